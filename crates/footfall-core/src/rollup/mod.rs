//! Rollups: per site, local time bucket and dimension value, the sums a report needs —
//! kept on write by the storage applier, in the same transaction as the raw rows, so a
//! dashboard costs days × distinct values instead of events.
//!
//! Visitor counts stay exact because of one rule, which raw queries follow too: **a range's
//! visitors are the sum, over the site's local days in it, of each day's distinct visitor
//! ids** (a day's hours have their own distinct counts). Visitor ids rotate with the daily
//! salt, so this is what counting distinct ids over a range already approximated; stating
//! it makes whole-day rollups summable:
//! - a visit across midnight counts its visitor on each local day on which it has events
//!   (its visit metrics — visits, bounces, durations — go to the day it started);
//! - a client-held id (the seed's `sessionId`, which never rotates) counts once per day,
//!   like a hashed id would;
//! - days are the site's local days, so a change of the site's time zone rebuilds its
//!   rollups (until then its reports are answered from raw rows).
//!
//! [`keep::Rollups`] turns commit records into [`Deltas`] (pure; it holds, per visitor and
//! open day, which values were already counted); the store adds them to its rollup table.
//! [`crate::query::plan`] reads the table where it answers exactly.

pub mod calendar;
pub mod keep;
pub mod rebuild;

use crate::query::{Dimension, VisitProp};
use crate::SiteId;
use std::collections::HashMap;
use std::sync::Arc;

pub use calendar::LocalClock;
pub use keep::{Rollups, SeedDay, SeedEvent, SeedTime, SeedVisit};

/// A rollup row's time bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// Local hours since the epoch; totals only (the "today" graph).
    Hour = 0,
    /// Local days since the epoch (1970-01-01 = 0).
    Day = 1,
}

/// The `dim` column: which dimension a row breaks down by.
pub mod dim {
    pub const TOTAL: u8 = 0;
    pub const PAGE: u8 = 1;
    pub const NAME: u8 = 2;
    pub const HOSTNAME: u8 = 3;
    /// Event properties: value [`super::prop_value`]`(None, key, value)`.
    pub const PROP: u8 = 4;
    /// Event properties per event name: [`super::prop_value`]`(Some(name), key, value)` (a
    /// custom event's properties are looked at with a filter on its name).
    pub const NAME_PROP: u8 = 5;
    /// `visit:*` dimensions: `VISIT + index in VisitProp::ALL`.
    pub const VISIT: u8 = 10;
}

/// The rollup dimension code of a query dimension, if rollups keep it. Event properties
/// have their own rows ([`dim::PROP`], [`dim::NAME_PROP`]), read by key prefix.
pub fn dim_code(d: &Dimension) -> Option<u8> {
    match d {
        Dimension::Page => Some(dim::PAGE),
        Dimension::Name => Some(dim::NAME),
        Dimension::Hostname => Some(dim::HOSTNAME),
        Dimension::Visit(p) => VisitProp::ALL
            .iter()
            .position(|x| x == p)
            .map(|i| dim::VISIT + i as u8),
        Dimension::Prop(_) | Dimension::Time(_) | Dimension::Goal => None,
    }
}

/// The start of a property row's value: each part with its length in characters, so no
/// key or name can be mistaken for another, whatever characters they hold.
pub fn prop_prefix(name: Option<&str>, key: &str) -> String {
    let mut out = String::new();
    for part in name.into_iter().chain([key]) {
        out.push_str(&part.chars().count().to_string());
        out.push(':');
        out.push_str(part);
    }
    out
}

/// A property row's value: [`prop_prefix`] then the property's value.
pub fn prop_value(name: Option<&str>, key: &str, value: &str) -> String {
    let mut out = prop_prefix(name, key);
    out.push_str(value);
    out
}

/// An event's properties as a breakdown sees them: the first value of each key.
pub fn first_props(props: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    props.iter().enumerate().filter_map(move |(i, (k, v))| {
        (!props[..i].iter().any(|(k2, _)| k2 == k)).then_some((k.as_str(), v.as_str()))
    })
}

/// Where a delta goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub site: SiteId,
    pub grain: Grain,
    pub bucket: i64,
    pub dim: u8,
    pub value: Arc<str>,
}

/// A row's sums. Event-side columns (`visitors`, `pageviews`, `events`, scroll) count events
/// by the day they happened; visit-side columns by the day the visit started. For entry and exit
/// pages, which belong to a visit rather than an event, every column is visit-side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub visitors: i64,
    pub pageviews: i64,
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration_ms: i64,
    pub visit_pageviews: i64,
    /// Scroll depth (page rows only): the sum, over (visit, local day) pairs with an
    /// engagement event on this page, of the deepest scroll among those events; and how
    /// many such pairs.
    pub scroll_sum: i64,
    pub scroll_visits: i64,
    /// Time on page (page rows only): the sum of the measured durations of the page's
    /// views that happened on the day, and the number of (visit, local day) pairs with at
    /// least one measured view of the page. A view's duration is the sequencer's: to the
    /// visit's next page view, or for its last one to the visit's end (unmeasured while
    /// the visit ends on it).
    pub page_time_ms: i64,
    pub page_time_visits: i64,
}

impl Sums {
    pub fn add(&mut self, o: &Sums) {
        self.visitors += o.visitors;
        self.pageviews += o.pageviews;
        self.events += o.events;
        self.visits += o.visits;
        self.bounces += o.bounces;
        self.duration_ms += o.duration_ms;
        self.visit_pageviews += o.visit_pageviews;
        self.scroll_sum += o.scroll_sum;
        self.scroll_visits += o.scroll_visits;
        self.page_time_ms += o.page_time_ms;
        self.page_time_visits += o.page_time_visits;
    }

    pub fn is_zero(&self) -> bool {
        *self == Sums::default()
    }
}

/// Maps on the per-event path: a fast hasher (keys are ours, not an attacker's choice of
/// bucket: values are hashed together with the site and dimension).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Changes to rollup rows, summed per row: per (site, grain, bucket), then per dimension
/// and value, so an event's twenty-odd rows of one day cost one lookup of its site's day
/// and one hash of each value.
#[derive(Debug, Default, Clone)]
pub struct Deltas(FastMap<(SiteId, Grain, i64), Bucket>);

/// One (site, grain, bucket)'s changed rows, indexed by dimension.
#[derive(Debug, Default, Clone)]
pub struct Bucket(Vec<hashbrown::HashMap<Arc<str>, Sums, foldhash::fast::RandomState>>);

impl Bucket {
    pub fn row(&mut self, dim: u8, value: &Arc<str>) -> &mut Sums {
        let d = usize::from(dim);
        if self.0.len() <= d {
            self.0.resize_with(d + 1, Default::default);
        }
        // Looked up by the string: a key is only made (a new allocation) for a new row.
        self.0[d].entry_ref(&**value).or_default()
    }
}

impl Deltas {
    /// The rows of one site's bucket.
    pub fn bucket(&mut self, site: &SiteId, grain: Grain, bucket: i64) -> &mut Bucket {
        self.0.entry((site.clone(), grain, bucket)).or_default()
    }

    pub fn row(
        &mut self,
        site: &SiteId,
        grain: Grain,
        bucket: i64,
        dim: u8,
        value: &Arc<str>,
    ) -> &mut Sums {
        self.bucket(site, grain, bucket).row(dim, value)
    }

    /// The rows that changed (rows whose changes cancelled out are left alone).
    pub fn changed(&self) -> impl Iterator<Item = (RollupKey, &Sums)> {
        self.0.iter().flat_map(|((site, grain, bucket), b)| {
            b.0.iter().enumerate().flat_map(move |(dim, values)| {
                values
                    .iter()
                    .filter(|(_, s)| !s.is_zero())
                    .map(move |(value, s)| {
                        (
                            RollupKey {
                                site: site.clone(),
                                grain: *grain,
                                bucket: *bucket,
                                dim: dim as u8,
                                value: value.clone(),
                            },
                            s,
                        )
                    })
            })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.changed().next().is_none()
    }
}
