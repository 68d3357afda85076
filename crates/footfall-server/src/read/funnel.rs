//! `POST /api/v2/funnel`: how many visitors reached each of 2–8 goals, in order, within a
//! visit — over a range and any v2 filters. The steps are goals' names; the answer has
//! Plausible's funnel shape (see docs/API.md).

use super::query::{iso_in, json_body, read_turn, resolve, rollups_answer, run_parts, site_of};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use footfall_core::decode::limits;
use footfall_core::query::plan::{self, Context};
use footfall_core::query::{funnel, goals, parse, QueryError};
use serde_json::{json, Value};
use std::sync::Arc;

const FIELDS: [&str; 6] = [
    "site_id",
    "date_range",
    "date",
    "filters",
    "steps",
    "funnel",
];

pub async fn funnel(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let mut value = json_body(body, limits::BODY_BYTES).await?;
    let site = site_of(&st, &headers, value.get("site_id").and_then(Value::as_str))?;
    crate::segments::expand_in_query(&st, &headers, &site, &mut value).await?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| QueryError::new("query", "must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(QueryError::new(
            k.clone(),
            format!("unknown field; a funnel takes {}", FIELDS.join(", ")),
        )
        .into());
    }
    let names: Vec<String> =
        match (obj.remove("steps"), obj.remove("funnel")) {
            (Some(v), None) => serde_json::from_value(v)
                .map_err(|_| QueryError::new("steps", "must be a list of goal names"))?,
            (None, Some(Value::String(name))) => {
                let (st2, site2) = (st.clone(), site.clone());
                let saved = tokio::task::spawn_blocking(move || st2.ingest.sites.funnels(&site2))
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))??;
                saved
                    .into_iter()
                    .find(|f| f.name == name.trim())
                    .map(|f| f.steps)
                    .ok_or_else(|| ApiError::NotFound(format!("no funnel {name:?} on {site}")))?
            }
            (None, Some(_)) => {
                return Err(QueryError::new("funnel", "must be a saved funnel's name").into())
            }
            _ => return Err(QueryError::new(
                "steps",
                "give either steps (2 to 8 goal names, in order) or funnel (a saved funnel's name)",
            )
            .into()),
        };
    // The rest is a v2 query's range and filters, validated as one.
    obj.insert("metrics".into(), json!(["visitors"]));
    let q = parse::parse_v2(&value, st.ingest.sites.timezone(&site))?;
    let site_goals = st.ingest.sites.goals(&site);
    goals::check(&q, &site_goals)?;
    let steps = funnel::resolve(&names, &site_goals)?;
    let range = resolve(&st, &site, &q);
    let (turn, conn) = read_turn(&st).await?;
    let rollups = rollups_answer(conn.as_ref(), &site, q.timezone)?;
    let cx = Context {
        site: site.as_str(),
        start: range.start,
        end: range.end,
        buckets: None,
        tz: q.timezone,
        rollups,
        goals: &site_goals,
        by_goal: None,
    };
    // All visitors: the `visitors` of the same range and filters (the query asks that).
    let mut sql = plan::plan(&q, &cx, conn.dialect());
    sql.push(funnel::plan(&q, &steps, &cx, conn.dialect()));
    let parts = run_parts(&st, turn, conn, sql).await?;
    let mut all_visitors = 0.0;
    let mut row = Vec::new();
    for p in &parts {
        if p.part == plan::Part::Funnel {
            row = p.rows.first().map(|(_, v)| v.clone()).unwrap_or_default();
        } else {
            all_visitors += p
                .rows
                .iter()
                .filter_map(|(_, v)| v.first().copied().flatten())
                .sum::<f64>();
        }
    }
    let iso = |ms: i64| iso_in(q.timezone, ms);
    let mut out = serde_json::to_value(funnel::answer(&steps, all_visitors, &row))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    out["query"] = json!({
        "site_id": site,
        "date_range": [iso(range.start), iso(range.end - 1)],
        "steps": names,
        "timezone": q.timezone.name(),
    });
    Ok(Json(out))
}

/// `GET /api/stats/{site}/funnels` → `{"site", "funnels": [{"name", "steps"}]}`: the saved
/// funnels, for anyone who may read the site's stats (the dashboard's funnel view).
pub async fn saved(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(site): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let site = site_of(&st, &headers, Some(&site))?;
    let (st2, site2) = (st.clone(), site.clone());
    let funnels = tokio::task::spawn_blocking(move || st2.ingest.sites.funnels(&site2))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(json!({ "site": site, "funnels": funnels })))
}
