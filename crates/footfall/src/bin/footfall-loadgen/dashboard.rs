//! `--mode dashboard`: the Stats API requests the web dashboard (`web/dashboard/`) sends
//! when it opens a site, with the same bodies, run concurrently as a browser would, again
//! and again; prints the latency of the whole dashboard and of each request.
//!
//! Mirrored from the browser (default view state: comparison on, first tab of each panel
//! unless `--panels all`):
//! - cards.js / dashboard.js `loadCards`: the six card metrics with `compare: previous_period`;
//! - `loadGraph`: the same metrics by `time:hour|day|month` (by range) with time labels and
//!   the comparison, whose answer carries the previous period's series (`meta.
//!   comparison_results`; against a server without it, a second request over the
//!   `comparison_date_range` the first answer gave);
//!
//! The browser sends these as one `POST /api/v2/query/batch`; here each is its own request,
//! all concurrent, so the per-request figures show which panel costs what.
//! - `loadMap`: visitors by country, 300 rows;
//! - panels.js / breakdowns.js: each panel's tab as `visitors` + `percentage`, 10 rows, with
//!   total rows; the page tabs then fetch their titles (`GET /api/stats/{site}/titles`);
//! - events.js: custom events (names other than pageview, engagement, heartbeat).

use crate::{civil_date, Args, PanelSet};
use futures::future::join_all;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

const CARD_METRICS: [&str; 6] = [
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
];

/// The panels and their tabs, in the dashboard's order (breakdowns.js `panelDefs`).
const PANELS: &[&[&str]] = &[
    &["event:page", "visit:entry_page", "visit:exit_page"],
    &[
        "visit:source",
        "visit:referrer",
        "visit:utm_source",
        "visit:utm_medium",
        "visit:utm_campaign",
    ],
    &["visit:country", "visit:region", "visit:city"],
    &["visit:browser", "visit:os", "visit:device"],
];

/// A range as range.js `rangeQuery` turns it into a query: date_range, date and time unit.
struct Range {
    date_range: Value,
    date: Option<String>,
    unit: &'static str,
}

fn range(name: &str) -> Result<Range, String> {
    let (date_range, unit) = match name {
        "day" => ("day", "hour"),
        "yesterday" => ("day", "hour"),
        "7d" => ("7d", "day"),
        "30d" => ("30d", "day"),
        "month" => ("month", "day"),
        "12mo" => ("12mo", "month"),
        _ => {
            return Err(format!(
                "--range {name}: expected day, yesterday, 7d, 30d, month or 12mo"
            ))
        }
    };
    // "Yesterday" in the site's zone; the generated sites are in UTC.
    let date = (name == "yesterday").then(|| {
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64 / 86_400)
            .unwrap_or(0);
        let (y, m, d) = civil_date(today - 1);
        format!("{y:04}-{m:02}-{d:02}")
    });
    Ok(Range {
        date_range: json!(date_range),
        date,
        unit,
    })
}

/// `--filter` values: each one filter (`["is","visit:country",["US"]]`) or a list of them.
fn filters(args: &[String]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for raw in args {
        let v: Value =
            serde_json::from_str(raw).map_err(|e| format!("--filter {raw}: not JSON ({e})"))?;
        match v {
            Value::Array(items) if items.first().is_some_and(Value::is_array) => out.extend(items),
            Value::Array(_) => out.push(v),
            _ => return Err(format!("--filter {raw}: expected a JSON array")),
        }
    }
    Ok(out)
}

/// One request of a dashboard load (some are two requests, the second built from the first's
/// answer, timed together as the browser waits for both).
enum Job {
    Query(Value),
    /// The graph: its query, then the comparison series.
    Graph(Value, Value),
    /// A page tab: its query, then the titles of the paths it returned.
    WithTitles(Value),
}

struct Dashboard {
    site: String,
    range: Range,
    filters: Vec<Value>,
}

impl Dashboard {
    /// dashboard.js `base(extraFilters)`.
    fn base(&self, extra: &[Value]) -> Value {
        let mut f = self.filters.clone();
        f.extend(extra.iter().cloned());
        let mut q =
            json!({"site_id": self.site, "date_range": self.range.date_range, "filters": f});
        if let Some(d) = &self.range.date {
            q["date"] = json!(d);
        }
        q
    }

    fn with(&self, extra_filters: &[Value], fields: Value) -> Value {
        let mut q = self.base(extra_filters);
        if let (Some(q), Value::Object(f)) = (q.as_object_mut(), fields) {
            q.extend(f);
        }
        q
    }

    /// dashboard.js `run({dimension, metrics, filters, limit})`.
    fn run(&self, dimension: &str, metrics: &[&str], filters: &[Value], limit: u32) -> Value {
        self.with(
            filters,
            json!({"metrics": metrics, "dimensions": [dimension],
                   "order_by": [[metrics[0], "desc"]], "pagination": {"limit": limit},
                   "include": {"total_rows": true}}),
        )
    }

    fn jobs(&self, panels: PanelSet) -> Vec<(String, Job)> {
        let dim = format!("time:{}", self.range.unit);
        let mut jobs = vec![
            (
                "cards".to_string(),
                Job::Query(self.with(
                    &[],
                    json!({"metrics": CARD_METRICS, "include": {"compare": "previous_period"}}),
                )),
            ),
            (
                format!("graph {dim} + previous period"),
                Job::Graph(
                    self.with(
                        &[],
                        json!({"metrics": CARD_METRICS, "dimensions": [dim],
                               "include": {"time_labels": true, "compare": "previous_period"}}),
                    ),
                    // date_range is filled in from the first answer.
                    json!({"site_id": self.site, "filters": self.filters, "metrics": CARD_METRICS,
                           "dimensions": [dim], "include": {"time_labels": true}}),
                ),
            ),
            (
                "map visit:country".to_string(),
                Job::Query(self.run("visit:country", &["visitors"], &[], 300)),
            ),
        ];
        for tabs in PANELS {
            let shown = match panels {
                PanelSet::Load => &tabs[..1],
                PanelSet::All => tabs,
            };
            for dim in shown {
                let q = self.run(dim, &["visitors", "percentage"], &[], 10);
                let job = if dim.ends_with("page") {
                    Job::WithTitles(q)
                } else {
                    Job::Query(q)
                };
                jobs.push((dim.to_string(), job));
            }
        }
        jobs.push((
            "custom events".to_string(),
            Job::Query(self.run(
                "event:name",
                &["visitors", "events"],
                &[json!([
                    "is_not",
                    "event:name",
                    ["pageview", "engagement", "heartbeat"]
                ])],
                10,
            )),
        ));
        jobs
    }
}

async fn query(
    client: &reqwest::Client,
    args: &Args,
    token: &str,
    body: &Value,
) -> Result<Value, String> {
    let r = client
        .post(format!("{}/api/v2/query", args.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let text = r.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status} {text} (query {body})"));
    }
    serde_json::from_str(&text).map_err(|e| format!("answer is not JSON: {e}"))
}

async fn run_job(
    client: &reqwest::Client,
    args: &Args,
    token: &str,
    job: &Job,
) -> Result<Duration, String> {
    let t = Instant::now();
    match job {
        Job::Query(q) => {
            query(client, args, token, q).await?;
        }
        Job::Graph(q, previous) => {
            let res = query(client, args, token, q).await?;
            // The answer carries the previous period whole (footfall's meta addition): the
            // browser then asks no second question, and neither does this.
            if res["meta"].get("comparison_results").is_some() {
                return Ok(t.elapsed());
            }
            if let Some([from, to]) = res["query"]["comparison_date_range"]
                .as_array()
                .and_then(|a| <&[Value; 2]>::try_from(a.as_slice()).ok())
            {
                let (from, to) = (from.as_str().unwrap_or(""), to.as_str().unwrap_or(""));
                // Whole days as days, as the browser does.
                let days = if from.contains("T00:00:00") && to.contains("T23:59:59") {
                    json!([from.get(..10).unwrap_or(from), to.get(..10).unwrap_or(to)])
                } else {
                    json!([from, to])
                };
                let mut previous = previous.clone();
                previous["date_range"] = days;
                query(client, args, token, &previous).await?;
            }
        }
        Job::WithTitles(q) => {
            let res = query(client, args, token, q).await?;
            let paths: Vec<(&str, &str)> = res["results"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| r["dimensions"][0].as_str())
                        .take(50)
                        .map(|p| ("path", p))
                        .collect()
                })
                .unwrap_or_default();
            if !paths.is_empty() {
                let r = client
                    .get(format!("{}/api/stats/{}/titles", args.url, args.site))
                    .query(&paths)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("titles: {}", r.status()));
                }
                r.bytes().await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(t.elapsed())
}

pub async fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let dash = Dashboard {
        site: args.site.clone(),
        range: range(&args.range)?,
        filters: filters(&args.filter)?,
    };
    let jobs = dash.jobs(args.panels);
    let client = reqwest::Client::new();
    let token = args.token.clone().unwrap_or_default();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut each: BTreeMap<usize, Histogram<u64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let mut n = 0;
    while Instant::now() < deadline || n == 0 {
        let t = Instant::now();
        let results = join_all(
            jobs.iter()
                .map(|(_, job)| run_job(&client, args, &token, job)),
        )
        .await;
        for (i, r) in results.into_iter().enumerate() {
            let took = r.map_err(|e| format!("{}: {e}", jobs[i].0))?;
            let h = match each.entry(i) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(Histogram::new_with_bounds(1, 600_000_000, 3)?)
                }
            };
            h.record((took.as_micros() as u64).max(1))?;
        }
        hist.record((t.elapsed().as_micros() as u64).max(1))?;
        n += 1;
    }
    println!(
        "dashboards: {n} (site {}, range {}, filters {}; {} jobs each, concurrent)",
        args.site,
        args.range,
        serde_json::to_string(&dash.filters)?,
        jobs.len()
    );
    println!(
        "latency ms: p50 {:.1}  p90 {:.1}  max {:.1}",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.9) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    println!("per request (within a concurrent dashboard), ms:");
    for (i, h) in &each {
        println!(
            "  {:<36} p50 {:>8.1}  max {:>8.1}",
            jobs[*i].0,
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    Ok(())
}
