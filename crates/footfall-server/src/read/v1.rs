//! Plausible's Stats API v1 (`/api/v1/stats/*`), translated into the same typed query as
//! v2 — no second filter builder.

use super::query::{execute, site_of};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Query as Params, State};
use axum::http::HeaderMap;
use axum::Json;
use footfall_core::query::result;
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
    headers: &HeaderMap,
    p: &V1Params,
    default_metrics: &str,
) -> Result<(footfall_core::SiteId, Query), ApiError> {
    let site = site_of(st, headers, p.site_id.as_deref())?;
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
    let q = Query {
        site: site.to_string(),
        date_range,
        relative_date,
        timezone: st.ingest.sites.timezone(&site),
        metrics,
        dimensions: Vec::new(),
        filters,
        order_by: Vec::new(),
        limit: parse::MAX_LIMIT,
        offset: 0,
        include: Include::default(),
    };
    Ok((site, q))
}

/// One v1 row: `label` (if given) under `key`, then each metric by name.
fn v1_row(key_value: Option<(&str, Value)>, metrics: &[Metric], values: Option<&[Value]>) -> Value {
    let mut o = Map::new();
    if let Some((k, v)) = key_value {
        o.insert(k.into(), v);
    }
    for (i, m) in metrics.iter().enumerate() {
        o.insert(
            m.name().into(),
            values.and_then(|v| v.get(i)).cloned().unwrap_or(json!(0)),
        );
    }
    Value::Object(o)
}

/// `GET /api/v1/stats/realtime/visitors` → the number of visitors active now.
pub async fn realtime(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let site = site_of(&st, &headers, p.site_id.as_deref())?;
    Ok(Json(json!(st
        .read
        .live
        .active_count(&site, st.clock.as_ref()))))
}

/// `GET /api/v1/stats/aggregate` → `{"results": {"visitors": {"value": 1, "change": 5}}}`
pub async fn aggregate(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let (site, mut q) = base_query(&st, &headers, &p, "visitors")?;
    match p.compare.as_deref() {
        None => {}
        Some("previous_period") => q.include.compare = Some(Comparison::PreviousPeriod),
        Some(other) => return Err(qerr("compare", format!("{other:?}: only previous_period"))),
    }
    parse::validate(&q)?;
    let ex = execute(&st, &site, &q).await?;
    let mut out = Map::new();
    if let Some((row, prev)) = ex.rows.first() {
        for (i, m) in q.metrics.iter().enumerate() {
            let mut entry = json!({ "value": row.metrics[i] });
            if let Some(prev) = prev {
                entry["change"] = result::change(*m, row.numbers[i], prev.numbers[i]);
            }
            out.insert(m.name().into(), entry);
        }
    }
    Ok(Json(json!({ "results": out })))
}

/// `GET /api/v1/stats/timeseries` → one row per interval, zeros included.
pub async fn timeseries(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Params(p): Params<V1Params>,
) -> Result<Json<Value>, ApiError> {
    let (site, mut q) = base_query(&st, &headers, &p, "visitors")?;
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
    let ex = execute(&st, &site, &q).await?;
    let by_label: std::collections::HashMap<&str, &[Value]> = ex
        .rows
        .iter()
        .map(|(r, _)| (r.dimensions[0].as_str(), r.metrics.as_slice()))
        .collect();
    let results: Vec<Value> = ex
        .labels
        .iter()
        .flatten()
        .map(|label| {
            v1_row(
                Some(("date", json!(label))),
                &q.metrics,
                by_label.get(label.as_str()).copied(),
            )
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
    let (site, mut q) = base_query(&st, &headers, &p, "visitors")?;
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
    let short = match &dim {
        Dimension::Prop(k) => k.clone(),
        other => other
            .name()
            .split(':')
            .next_back()
            .unwrap_or_default()
            .to_string(),
    };
    let ex = execute(&st, &site, &q).await?;
    let results: Vec<Value> = ex
        .rows
        .iter()
        .map(|(r, _)| {
            v1_row(
                Some((&short, json!(r.dimensions[0]))),
                &q.metrics,
                Some(&r.metrics),
            )
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}
