//! `POST /api/v2/query`: Plausible's Stats API v2 over the typed query model. Shared by the
//! v1 routes, which translate their parameters into the same [`Query`].

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use footfall_core::decode::limits;
use footfall_core::goal::Goal;
use footfall_core::query::plan::{self, BucketKey, Context};
use footfall_core::query::result::{self, PartRows, Row};
use footfall_core::query::revenue::{self, Lens};
use footfall_core::query::time::{self, Bucket, Resolved};
use footfall_core::query::{parse, Dimension, Query, QueryError, TimeBucket};
use footfall_core::SiteId;
use footfall_store::EventStore;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most time buckets one query may produce.
const MAX_BUCKETS: usize = 10_000;

/// Read connections to the database, reused across queries.
pub struct ReadPool {
    idle: Mutex<Vec<Box<dyn EventStore>>>,
    template: Mutex<Box<dyn EventStore>>,
    /// Queries running at once. Each already uses every core; more at once only add memory
    /// (a dashboard opening is 8 requests, 16 queries with their comparisons, each with its
    /// own hash tables) and finish none sooner.
    running: Arc<tokio::sync::Semaphore>,
}

impl ReadPool {
    pub fn new(template: Box<dyn EventStore>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ReadPool {
            idle: Mutex::new(Vec::new()),
            template: Mutex::new(template),
            running: Arc::new(tokio::sync::Semaphore::new(2 * cores)),
        }
    }

    fn get(&self) -> Result<Box<dyn EventStore>, ApiError> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        self.template
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .connect()
            .map_err(|e| ApiError::Unavailable(e.to_string()))
    }

    fn put(&self, c: Box<dyn EventStore>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < 8 {
            idle.push(c);
        }
    }
}

pub async fn v2(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let mut value = json_body(body, limits::BODY_BYTES).await?;
    let site = site_of(&st, &headers, value.get("site_id").and_then(Value::as_str))?;
    crate::segments::expand_in_query(&st, &headers, &site, &mut value).await?;
    let q = parse::parse_v2(&value, st.ingest.sites.timezone(&site))?;
    let ex = execute(&st, &site, &q).await?;
    Ok(Json(v2_json(&site, &q, &ex)))
}

pub(crate) async fn json_body(body: Body, limit: usize) -> Result<Value, ApiError> {
    let body = crate::http::read_body(body, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))
}

/// Most queries one batch may hold.
pub const MAX_BATCH: usize = 32;

/// `POST /api/v2/query/batch`: `{"queries": [q, …]}` → `{"results": [{"status", "body"}, …]}`
/// in the same order. Each query is authorised and answered as `/api/v2/query` would,
/// concurrently (within the read pool's limit), so a dashboard opening costs one round trip
/// instead of one per panel. A query that fails gets its status and `{"error"}` body in its
/// slot; the others still answer.
pub async fn v2_batch(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    // Each query may be as large as one sent alone.
    let value = json_body(body, limits::BODY_BYTES * MAX_BATCH).await?;
    let queries = value
        .get("queries")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::BadRequest("`queries` must be an array of v2 queries".into()))?;
    if queries.is_empty() || queries.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "`queries` must hold 1 to {MAX_BATCH} queries"
        )));
    }
    let one = |q: &Value| {
        let (st, headers, mut q) = (&st, &headers, q.clone());
        async move {
            let site = site_of(st, headers, q.get("site_id").and_then(Value::as_str))?;
            crate::segments::expand_in_query(st, headers, &site, &mut q).await?;
            let parsed = parse::parse_v2(&q, st.ingest.sites.timezone(&site))?;
            let ex = execute(st, &site, &parsed).await?;
            Ok::<Value, ApiError>(v2_json(&site, &parsed, &ex))
        }
    };
    let answers = futures::future::join_all(queries.iter().map(one)).await;
    let results: Vec<Value> = answers
        .into_iter()
        .map(|a| match a {
            Ok(body) => json!({"status": 200, "body": body}),
            Err(e) => {
                let (status, body) = e.to_json();
                json!({"status": status.as_u16(), "body": body})
            }
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// Authorises the request for the named site (401/403/404 as appropriate).
pub fn site_of(st: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Result<SiteId, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::Query(QueryError::new("site_id", "required: the site's domain"))
    })?;
    let site = SiteId::parse(raw)
        .map_err(|e| ApiError::Query(QueryError::new("site_id", e.to_string())))?;
    crate::auth::require_stats(st, headers, &site)?;
    if !st.ingest.sites.contains(&site) {
        return Err(ApiError::NotFound(format!("site {site} is not registered")));
    }
    Ok(site)
}

/// What a query resolved to, for the response and for comparisons.
pub struct Answer {
    pub rows: Vec<Row>,
    pub range: Resolved,
    pub labels: Option<Vec<String>>,
    /// Currencies whose revenue was left out for want of a rate.
    pub unconverted: std::collections::BTreeSet<String>,
}

fn buckets_for(q: &Query, range: &Resolved) -> Result<Option<(TimeBucket, Vec<Bucket>)>, ApiError> {
    let Some(Dimension::Time(b)) = q.time_dimension() else {
        return Ok(None);
    };
    let bucket = b.unwrap_or_else(|| time::auto_bucket(range));
    let bs = time::buckets(range, bucket, q.timezone, MAX_BUCKETS + 1);
    if bs.len() > MAX_BUCKETS {
        return Err(QueryError::new(
            "dimensions",
            format!("more than {MAX_BUCKETS} time buckets; choose a coarser time dimension or a shorter range"),
        )
        .into());
    }
    Ok(Some((bucket, bs)))
}

/// How long a query waits for storage to catch up with the log before it answers anyway.
const READ_BARRIER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A turn to read and a connection to read with, once storage holds everything
/// acknowledged before the request began (or the barrier gave up waiting).
pub async fn read_turn(
    st: &Arc<AppState>,
) -> Result<(tokio::sync::OwnedSemaphorePermit, Box<dyn EventStore>), ApiError> {
    if !st.read.stored.wait(READ_BARRIER_WAIT).await {
        tracing::warn!("storage is behind the log; answering from what is stored");
    }
    // Held until the query has run, in the blocking task: a request that goes away doesn't
    // give its turn back while its query still runs.
    let turn = st
        .read
        .reads
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((turn, st.read.reads.get()?))
}

/// Whether rollups may answer for `site`: only when complete and kept in the zone the
/// query counts days in.
pub fn rollups_answer(
    conn: &dyn EventStore,
    site: &SiteId,
    tz: chrono_tz::Tz,
) -> Result<bool, ApiError> {
    Ok(conn
        .rollup_zone(site)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .is_some_and(|zone| zone == tz.name()))
}

/// Runs planned statements on `conn` in a blocking task (counted by where they read), then
/// gives back the connection and the turn.
pub async fn run_parts(
    st: &Arc<AppState>,
    turn: tokio::sync::OwnedSemaphorePermit,
    conn: Box<dyn EventStore>,
    sql: Vec<plan::SqlQuery>,
) -> Result<Vec<PartRows>, ApiError> {
    let from_rollups = sql.iter().filter(|s| s.from_rollups()).count() as u64;
    st.metrics
        .parts_rollup
        .fetch_add(from_rollups, std::sync::atomic::Ordering::Relaxed);
    st.metrics.parts_raw.fetch_add(
        sql.len() as u64 - from_rollups,
        std::sync::atomic::Ordering::Relaxed,
    );
    let st2 = st.clone();
    let parts = tokio::task::spawn_blocking(move || {
        let parts: Result<Vec<PartRows>, _> = sql
            .iter()
            .map(|s| {
                conn.run_query(s)
                    .map(|rows| PartRows { part: s.part, rows })
            })
            .collect();
        st2.read.reads.put(conn);
        drop(turn);
        parts
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    parts.map_err(|e| ApiError::Internal(e.to_string()))
}

/// Runs a query for one resolved range.
pub async fn run_range(
    st: &Arc<AppState>,
    site: &SiteId,
    q: &Query,
    goals: &[Goal],
    range: Resolved,
) -> Result<Answer, ApiError> {
    let lens = Lens::new(q, goals, &st.read.rates);
    let buckets = buckets_for(q, &range)?;
    let key = buckets
        .as_ref()
        .map(|(kind, bs)| BucketKey::new(*kind, bs, q.timezone));
    let (turn, conn) = read_turn(st).await?;
    let rollups = rollups_answer(conn.as_ref(), site, q.timezone)?;
    let cx = Context {
        site: site.as_str(),
        start: range.start,
        end: range.end,
        buckets: key.as_ref(),
        tz: q.timezone,
        rollups,
        goals,
        by_goal: None,
    };
    let sql = plan::plan(q, &cx, conn.dialect());
    let mut parts = run_parts(st, turn, conn, sql).await?;
    // The SQL grouped by bucket keys; put the labels back.
    if let (Some(i), Some(key), Some((_, bs))) = (
        q.dimensions.iter().position(Dimension::is_time),
        &key,
        &buckets,
    ) {
        let labels = key.labels(bs);
        // Group totals leave out the goal dimension.
        let goal_before = q.dimensions[..i].contains(&Dimension::Goal);
        for p in &mut parts {
            let i = if p.part == plan::Part::GroupTotal && goal_before {
                i - 1
            } else {
                i
            };
            for (dims, _) in &mut p.rows {
                if let Some(label) = dims.get(i).and_then(|k| labels.get(k)) {
                    dims[i] = label.clone();
                }
            }
        }
    }
    let labels: Option<Vec<String>> =
        buckets.map(|(_, b)| b.into_iter().map(|b| b.label).collect());
    let rows = result::assemble(q, &parts, labels.as_deref(), &lens);
    Ok(Answer {
        rows,
        range,
        labels,
        unconverted: result::unconverted(q, &parts, &lens),
    })
}

/// The range a query covers as of now on the server's clock.
pub fn resolve(st: &AppState, site: &SiteId, q: &Query) -> Resolved {
    let tz = q.timezone;
    let today = q
        .relative_date
        .unwrap_or_else(|| time::local_date(tz, st.clock.now().0));
    let first = st.read.live.tracking_since(site).map(|t| t.0);
    time::resolve(&q.date_range, tz, today, first)
}

/// A query's page of results, each row with its comparison row when one was asked for.
pub struct Executed {
    pub rows: Vec<(Row, Option<Row>)>,
    /// Rows before pagination.
    pub total: usize,
    pub labels: Option<Vec<String>>,
    pub range: Resolved,
    pub comparison_range: Option<Resolved>,
    /// A time series' other period whole — its rows and time labels — for charts that
    /// draw it in full (position matching drops buckets the current period lacks).
    pub comparison_series: Option<(Vec<Row>, Vec<String>)>,
    /// Plausible's `meta.metric_warnings`, when a metric has something to say.
    pub metric_warnings: Option<Value>,
}

/// Runs a validated query (and its comparison) and paginates it: shared by v2 and v1, each
/// of which only shapes the JSON.
pub async fn execute(st: &Arc<AppState>, site: &SiteId, q: &Query) -> Result<Executed, ApiError> {
    // The goals as they are now: both periods read them alike.
    let goals = st.ingest.sites.goals(site);
    footfall_core::query::goals::check(q, &goals)?;
    let range = resolve(st, site, q);
    // Both periods at once: each runs on its own connection, so a comparison costs about
    // one period's time rather than two.
    let (answer, previous) = tokio::join!(run_range(st, site, q, &goals, range.clone()), async {
        match q.include.compare {
            Some(how) => {
                Some(run_range(st, site, q, &goals, time::compare(&range, how, q.timezone)).await)
            }
            None => None,
        }
    });
    let answer = answer?;
    let previous = previous.transpose()?;
    let time_index = q.dimensions.iter().position(Dimension::is_time);
    let now_pos = label_positions(&answer);
    let prev_index: Option<HashMap<Vec<String>, &Row>> = previous.as_ref().map(|p| {
        let pos = label_positions(p);
        p.rows
            .iter()
            .filter_map(|r| Some((comparison_key(r, time_index, &pos)?, r)))
            .collect()
    });
    let lens = Lens::new(q, &goals, &st.read.rates);
    let mut unconverted = answer.unconverted.clone();
    unconverted.extend(previous.iter().flat_map(|p| p.unconverted.iter().cloned()));
    let metric_warnings = revenue::warnings(q, &lens, &unconverted);
    let rows = answer
        .rows
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|row| {
            let prev = prev_index.as_ref().map(|index| {
                comparison_key(row, time_index, &now_pos)
                    .and_then(|k| index.get(&k))
                    .map(|r| (*r).clone())
                    .unwrap_or_else(|| empty_like(q, row, &lens))
            });
            (row.clone(), prev)
        })
        .collect();
    // Only for a plain series: other dimensions would page through rows this ignores.
    let comparison_series = previous
        .as_ref()
        .filter(|_| time_index.is_some() && q.dimensions.len() == 1 && q.include.time_labels)
        .map(|p| (p.rows.clone(), p.labels.clone().unwrap_or_default()));
    Ok(Executed {
        rows,
        total: answer.rows.len(),
        labels: answer.labels.clone(),
        range,
        comparison_range: previous.map(|p| p.range),
        comparison_series,
        metric_warnings,
    })
}

/// Plausible v2's response shape.
fn v2_json(site: &SiteId, q: &Query, ex: &Executed) -> Value {
    let results: Vec<Value> = ex
        .rows
        .iter()
        .map(|(row, prev)| result::row_json(row, prev.as_ref().map(|p| (p, q.metrics.as_slice()))))
        .collect();
    let mut meta = serde_json::Map::new();
    if q.include.time_labels {
        meta.insert(
            "time_labels".into(),
            json!(ex.labels.clone().unwrap_or_default()),
        );
    }
    if q.include.total_rows {
        meta.insert("total_rows".into(), json!(ex.total));
    }
    if let Some(w) = &ex.metric_warnings {
        meta.insert("metric_warnings".into(), w.clone());
    }
    // footfall's addition: a time series with a comparison and time labels also carries the
    // other period in full, so a chart needs no second request for it.
    if let Some((rows, labels)) = &ex.comparison_series {
        meta.insert("comparison_time_labels".into(), json!(labels));
        meta.insert(
            "comparison_results".into(),
            json!(rows
                .iter()
                .map(|r| result::row_json(r, None))
                .collect::<Vec<_>>()),
        );
    }
    let iso = |ms: i64| iso_in(q.timezone, ms);
    let mut query = json!({
        "site_id": site,
        "metrics": q.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "date_range": [iso(ex.range.start), iso(ex.range.end - 1)],
        "dimensions": q.dimensions.iter().map(Dimension::name).collect::<Vec<_>>(),
        "order_by": q.order_by.iter().map(|(k, d)| json!([match k {
            footfall_core::query::OrderKey::Metric(m) => m.name().to_string(),
            footfall_core::query::OrderKey::Dimension(d) => d.name(),
        }, if *d == footfall_core::query::Direction::Asc { "asc" } else { "desc" }])).collect::<Vec<_>>(),
        "pagination": {"limit": q.limit, "offset": q.offset},
        "timezone": q.timezone.name(),
    });
    if let Some(p) = &ex.comparison_range {
        query["comparison_date_range"] = json!([iso(p.start), iso(p.end - 1)]);
    }
    json!({ "results": results, "meta": meta, "query": query })
}

/// An instant as RFC 3339 in the site's zone, as answers echo their range.
pub fn iso_in(tz: chrono_tz::Tz, ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            d.with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        })
        .unwrap_or_default()
}

/// A row of zeros (nulls for averages over nothing) with `row`'s dimensions: what the other
/// period had where it had no data.
fn empty_like(q: &Query, row: &Row, lens: &Lens<'_>) -> Row {
    let mut zero = q.clone();
    zero.dimensions.clear();
    zero.metrics
        .retain(|m| *m != footfall_core::query::Metric::Percentage);
    // A breakdown by goal reads each row's currency from its goal: keep this row's.
    let goal = q
        .dimensions
        .iter()
        .position(|d| *d == Dimension::Goal)
        .and_then(|i| row.dimensions.get(i));
    let lens = Lens {
        target: match lens.currency(goal.map(String::as_str)) {
            None => revenue::Target::Missing(revenue::Missing::NoRevenueGoals),
            Some(c) => revenue::Target::One(c, Vec::new()),
        },
        rates: lens.rates,
    };
    let base = result::assemble(&zero, &[], None, &lens).pop();
    let (mut metrics, mut numbers) = (Vec::new(), Vec::new());
    for m in &q.metrics {
        let i = zero.metrics.iter().position(|x| x == m);
        match (i, &base) {
            (Some(i), Some(b)) => {
                metrics.push(b.metrics[i].clone());
                numbers.push(b.numbers[i]);
            }
            _ => {
                metrics.push(json!(0.0));
                numbers.push(0.0);
            }
        }
    }
    Row {
        dimensions: row.dimensions.clone(),
        metrics,
        numbers,
    }
}

/// Rows of a period keyed for matching: dimension values, with a time label replaced by
/// its position (the n-th day of this range ↔ the n-th of the other).
fn comparison_key(
    row: &Row,
    time_index: Option<usize>,
    positions: &HashMap<&str, usize>,
) -> Option<Vec<String>> {
    let mut k = row.dimensions.clone();
    if let Some(i) = time_index {
        k[i] = positions.get(k[i].as_str())?.to_string();
    }
    Some(k)
}

fn label_positions(a: &Answer) -> HashMap<&str, usize> {
    a.labels
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect()
}
