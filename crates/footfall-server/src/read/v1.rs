//! Plausible's Stats API v1 (`/api/v1/stats/*`), translated into the same typed query as
//! v2 — no second filter builder.

use super::query::{execute, site_of};
use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::{Query as Params, State};
use axum::http::HeaderMap;
use axum::Json;
use footfall_core::query::{
    legacy, parse, Comparison, Dimension, Include, Metric, Query, QueryError, TimeBucket,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct V1Params {
    site_id: Option<String>,
    period: Option<String>,
    date: Option<String>,
    metrics: Option<String>,
    filters: Option<String>,
    property: Option<String>,
    interval: Option<String>,
    limit: Option<usize>,
    page: Option<usize>,
    compare: Option<String>,
}

fn qerr(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::Query(QueryError::new(field, reason))
}

/// Builds the query every v1 route shares: site, period/date, metrics, filters.
fn base_query(
    st: &AppState,
    site: &footfall_core::SiteId,
    p: &V1Params,
    default_metrics: &str,
) -> Result<Query, ApiError> {
    let period = p.period.as_deref().unwrap_or("30d");
    let mut relative_date = None;
    let date_range = if period == "custom" {
        let raw = p
            .date
            .as_deref()
            .ok_or_else(|| qerr("date", "period=custom needs date=YYYY-MM-DD,YYYY-MM-DD"))?;
        let (a, b) = raw
            .split_once(',')
            .ok_or_else(|| qerr("date", "period=custom needs date=YYYY-MM-DD,YYYY-MM-DD"))?;
        parse::parse_date_range(&json!([a.trim(), b.trim()])).map_err(|e| qerr("date", e.reason))?
    } else {
        if let Some(d) = &p.date {
            relative_date = Some(parse::parse_date(d, "date")?);
        }
        match period {
            "day" | "7d" | "30d" | "month" | "6mo" | "12mo" | "year" | "all" => parse::parse_date_range(&json!(period)).map_err(|e| qerr("period", e.reason))?,
            other => return Err(qerr("period", format!("unknown period {other:?}; use day, 7d, 30d, month, 6mo, 12mo, year, all or custom"))),
        }
    };
    let metrics = p
        .metrics
        .as_deref()
        .unwrap_or(default_metrics)
        .split(',')
        .map(|m| {
            Metric::parse(m.trim()).ok_or_else(|| qerr("metrics", format!("unknown metric {m:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let filters = match &p.filters {
        Some(f) => legacy::parse_filters(f)?,
        None => Vec::new(),
    };
    Ok(Query {
        site: site.to_string(),
        date_range,
        relative_date,
        timezone: st.sites.timezone(site),
        metrics,
        dimensions: Vec::new(),
        filters,
        order_by: Vec::new(),
        limit: parse::MAX_LIMIT,
        offset: 0,
        include: Include::default(),
    })
}

fn metric_rows(v: &Value) -> Vec<Value> {
    v["results"].as_array().cloned().unwrap_or_default()
}

/// `GET /api/v1/stats/realtime/visitors` → the number of visitors active now.
pub async fn realtime(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let site = site_of(&st, &headers, p.site_id.as_deref())?;
    let live = st.live.snapshot(&site, st.clock.as_ref(), Some(0));
    Ok(Json(json!(live.active_visitors)))
}

/// `GET /api/v1/stats/aggregate` → `{"results": {"visitors": {"value": 1, "change": 5}}}`
pub async fn aggregate(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let site = site_of(&st, &headers, p.site_id.as_deref())?;
    let mut q = base_query(&st, &site, &p, "visitors")?;
    match p.compare.as_deref() {
        None => {}
        Some("previous_period") => q.include.compare = Some(Comparison::PreviousPeriod),
        Some(other) => return Err(qerr("compare", format!("{other:?}: only previous_period"))),
    }
    parse::validate(&q)?;
    let metrics = q.metrics.clone();
    let v = execute(&st, site, q).await?;
    let row = metric_rows(&v).into_iter().next().unwrap_or(Value::Null);
    let mut out = Map::new();
    for (i, m) in metrics.iter().enumerate() {
        let mut entry = json!({ "value": row["metrics"][i] });
        if !row["comparison"].is_null() {
            entry["change"] = row["comparison"]["change"][i].clone();
        }
        out.insert(m.name().into(), entry);
    }
    Ok(Json(json!({ "results": out })))
}

/// `GET /api/v1/stats/timeseries` → one row per interval, zeros included.
pub async fn timeseries(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let site = site_of(&st, &headers, p.site_id.as_deref())?;
    let mut q = base_query(&st, &site, &p, "visitors")?;
    let bucket = match p.interval.as_deref() {
        // Plausible's default interval per period.
        None => match p.period.as_deref().unwrap_or("30d") {
            "day" => Some(TimeBucket::Hour),
            "6mo" | "12mo" | "year" => Some(TimeBucket::Month),
            "all" => None,
            _ => Some(TimeBucket::Day),
        },
        Some("date") | Some("day") => Some(TimeBucket::Day),
        Some("month") => Some(TimeBucket::Month),
        Some("hour") => Some(TimeBucket::Hour),
        Some("week") => Some(TimeBucket::Week),
        Some(other) => {
            return Err(qerr(
                "interval",
                format!("{other:?}; use hour, date, week or month"),
            ))
        }
    };
    if q.metrics.contains(&Metric::Percentage) {
        return Err(qerr("metrics", "percentage is not a timeseries metric"));
    }
    q.dimensions = vec![Dimension::Time(bucket)];
    q.include.time_labels = true;
    parse::validate(&q)?;
    let metrics = q.metrics.clone();
    let v = execute(&st, site, q).await?;
    let mut by_label = std::collections::HashMap::new();
    for r in metric_rows(&v) {
        if let Some(l) = r["dimensions"][0].as_str() {
            by_label.insert(l.to_string(), r["metrics"].clone());
        }
    }
    let results: Vec<Value> = v["meta"]["time_labels"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|label| {
            let mut o = Map::new();
            o.insert("date".into(), label.clone());
            let values = label.as_str().and_then(|l| by_label.get(l));
            for (i, m) in metrics.iter().enumerate() {
                o.insert(
                    m.name().into(),
                    values.map(|v| v[i].clone()).unwrap_or(json!(0)),
                );
            }
            Value::Object(o)
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// `GET /api/v1/stats/breakdown?property=visit:source` → `[{"source": "Google", "visitors": 3}]`
pub async fn breakdown(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let site = site_of(&st, &headers, p.site_id.as_deref())?;
    let mut q = base_query(&st, &site, &p, "visitors")?;
    let prop = p
        .property
        .as_deref()
        .ok_or_else(|| qerr("property", "required, e.g. visit:source or event:page"))?;
    let dim = Dimension::parse(prop)
        .filter(|d| !d.is_time())
        .ok_or_else(|| qerr("property", format!("unknown property {prop:?}")))?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(qerr("limit", "1 to 1000"));
    }
    let page = p.page.unwrap_or(1).max(1);
    q.dimensions = vec![dim.clone()];
    q.limit = limit;
    q.offset = (page - 1).saturating_mul(limit);
    parse::validate(&q)?;
    let metrics = q.metrics.clone();
    let short = match &dim {
        Dimension::Prop(k) => k.clone(),
        other => other
            .name()
            .split(':')
            .next_back()
            .unwrap_or_default()
            .to_string(),
    };
    let v = execute(&st, site, q).await?;
    let results: Vec<Value> = metric_rows(&v)
        .into_iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert(short.clone(), r["dimensions"][0].clone());
            for (i, m) in metrics.iter().enumerate() {
                o.insert(m.name().into(), r["metrics"][i].clone());
            }
            Value::Object(o)
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}
