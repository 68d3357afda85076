//! The live stats object: the seed's `getStats`, plus visits, bounce rate and visit
//! duration. Field names follow the seed (camelCase) so its stats page can read ours.

use super::counters::PathStats;
use super::{ActiveVisitors, SiteCounters};
use crate::types::SiteId;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathCount {
    pub path: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitorLocation {
    pub latitude: f64,
    pub longitude: f64,
    pub city: Option<String>,
    pub country: Option<String>,
    /// Active visitors at this place (the seed listed one entry per visitor).
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageStat {
    pub path: String,
    pub title: String,
    pub page_type: String,
    pub views: u64,
    /// Mean measured time on page, milliseconds; null until one is measured.
    pub avg_time_on_page_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveStats {
    pub site: String,
    /// Grows with every committed change; a client never sees it go down.
    pub version: u64,
    pub active_visitors: usize,
    pub active_by_path: Vec<PathCount>,
    pub visitor_locations: Vec<VisitorLocation>,
    pub total_page_views: u64,
    pub unique_visitors: u64,
    /// Unix milliseconds of the first page view, null before any.
    pub tracking_since: Option<i64>,
    pub page_stats: Vec<PageStat>,
    /// Published entries of the content catalogue of type `post` and `page` (the seed's
    /// counts); 0 without a catalogue ([`crate::catalogue`]).
    pub published_posts: u64,
    pub published_pages: u64,
    pub visits: i64,
    /// Percentage of visits with one page view and no interaction, 0–100.
    pub bounce_rate: f64,
    pub avg_visit_duration_ms: i64,
}

impl LiveStats {
    /// Builds the object from counters and active visitors (already expired as of now).
    /// `limit` caps `pageStats` (None: all paths).
    pub fn build(
        site: &SiteId,
        version: u64,
        counters: Option<&SiteCounters>,
        active: &ActiveVisitors,
        limit: Option<usize>,
    ) -> LiveStats {
        let empty = SiteCounters::default();
        let c = counters.unwrap_or(&empty);
        // Rank by reference and copy out only the rows returned.
        let mut ranked: Vec<(&String, &PathStats)> =
            c.paths.iter().filter(|(_, p)| p.views > 0).collect();
        let order = |a: &(&String, &PathStats), b: &(&String, &PathStats)| {
            b.1.views.cmp(&a.1.views).then_with(|| a.0.cmp(b.0))
        };
        if let Some(l) = limit.filter(|l| *l < ranked.len()) {
            ranked.select_nth_unstable_by(l, order);
            ranked.truncate(l);
        }
        ranked.sort_by(order);
        let pages: Vec<PageStat> = ranked
            .into_iter()
            .map(|(path, p)| PageStat {
                path: path.clone(),
                title: p
                    .title
                    .as_ref()
                    .map(|(t, _)| t.clone())
                    .unwrap_or_else(|| default_title(path)),
                page_type: p
                    .page_type
                    .as_ref()
                    .map(|(t, _)| t.clone())
                    .unwrap_or_else(|| default_type(path)),
                views: p.views,
                avg_time_on_page_ms: (p.duration_count > 0)
                    .then(|| p.duration_sum_ms / p.duration_count),
            })
            .collect();
        let visits = c.visits.max(0);
        LiveStats {
            site: site.to_string(),
            version,
            active_visitors: active.count(site),
            active_by_path: active
                .by_path(site)
                .into_iter()
                .map(|(path, count)| PathCount { path, count })
                .collect(),
            visitor_locations: active
                .locations(site)
                .into_iter()
                .map(|(l, count)| VisitorLocation {
                    latitude: f64::from(l.lat_e2) / 100.0,
                    longitude: f64::from(l.lon_e2) / 100.0,
                    city: l.city.as_deref().map(str::to_string),
                    country: l.country.as_deref().map(str::to_string),
                    count,
                })
                .collect(),
            total_page_views: c.total_pageviews,
            unique_visitors: c.visitor_days.total(),
            tracking_since: c.tracking_since.map(|t| t.0),
            page_stats: pages,
            published_posts: 0,
            published_pages: 0,
            visits,
            bounce_rate: if visits > 0 {
                (c.bounces as f64 * 1000.0 / visits as f64).round() / 10.0
            } else {
                0.0
            },
            avg_visit_duration_ms: if visits > 0 {
                c.visit_duration_sum_ms / visits
            } else {
                0
            },
        }
    }
}

/// The seed's titles for paths it knew; a later content catalogue supplies real ones.
fn default_title(path: &str) -> String {
    if path == "/" {
        "Home".into()
    } else {
        path.into()
    }
}

fn default_type(path: &str) -> String {
    if path == "/" {
        "home".into()
    } else {
        "other".into()
    }
}
