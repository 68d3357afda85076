//! A site's local calendar: which local day and hour an instant falls in, as the integer
//! keys rollups and queries share (local milliseconds divided by the bucket length, so a
//! repeated hour at the end of summer time is one bucket, as in the query planner).

use crate::query::time;
use chrono_tz::Tz;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalClock {
    pub tz: Tz,
}

impl LocalClock {
    pub fn new(tz: Tz) -> Self {
        LocalClock { tz }
    }

    fn local(&self, ts: i64) -> i64 {
        ts + time::offset_ms(self.tz, ts)
    }

    /// Local days since 1970-01-01.
    pub fn day(&self, ts: i64) -> i64 {
        self.local(ts).div_euclid(DAY_MS)
    }

    /// Local hours since the epoch.
    pub fn hour(&self, ts: i64) -> i64 {
        self.local(ts).div_euclid(HOUR_MS)
    }

    /// The hour of the local day, 0–23.
    pub fn hour_of_day(&self, ts: i64) -> u32 {
        (self.local(ts).rem_euclid(DAY_MS) / HOUR_MS) as u32
    }

    /// Day, hour and hour of the day at once (one time-zone lookup instead of three).
    pub fn parts(&self, ts: i64) -> (i64, i64, u32) {
        Self::split(self.local(ts))
    }

    /// The offset (local minus UTC, ms) at `ts`, and the UTC span of instants around it
    /// that share it: its local day, when the offset is the same at both ends of the day
    /// (no zone changes its offset twice within a day), else `ts` alone.
    pub fn offset_span(&self, ts: i64) -> (i64, (i64, i64)) {
        let offset = time::offset_ms(self.tz, ts);
        let (start, end) = self.day_span((ts + offset).div_euclid(DAY_MS));
        let same = |t: i64| time::offset_ms(self.tz, t) == offset;
        if start <= ts && ts < end && same(start) && same(end - 1) {
            (offset, (start, end))
        } else {
            (offset, (ts, ts + 1))
        }
    }

    /// Day, hour and hour of the day of a local time (ms).
    pub fn split(local: i64) -> (i64, i64, u32) {
        (
            local.div_euclid(DAY_MS),
            local.div_euclid(HOUR_MS),
            (local.rem_euclid(DAY_MS) / HOUR_MS) as u32,
        )
    }

    /// The UTC instants `[start, end)` of a local day.
    pub fn day_span(&self, day: i64) -> (i64, i64) {
        let date = |d: i64| {
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
                + chrono::Duration::days(d)
        };
        (
            time::midnight(self.tz, date(day)),
            time::midnight(self.tz, date(day + 1)),
        )
    }

    /// Whether `ts` is the first instant of a local day (the one before is another day).
    pub fn starts_day(&self, ts: i64) -> bool {
        self.day(ts - 1) != self.day(ts)
    }

    pub fn starts_hour(&self, ts: i64) -> bool {
        self.hour(ts - 1) != self.hour(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every instant lies in the span of its own day, and spans start days.
        #[test]
        fn day_spans_hold_their_instants(ts in 0i64..4_000_000_000_000, zone in 0usize..5) {
            let zones = ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
            let c = LocalClock::new(zones[zone].parse().unwrap());
            let (a, b) = c.day_span(c.day(ts));
            proptest::prop_assert!(a <= ts && ts < b, "{a} {ts} {b}");
            proptest::prop_assert!(c.starts_day(a) && c.starts_day(b));
        }

        /// `parts` is `day`, `hour` and `hour_of_day` in one.
        #[test]
        fn parts_agree(ts in 0i64..4_000_000_000_000, zone in 0usize..5) {
            let zones = ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
            let c = LocalClock::new(zones[zone].parse().unwrap());
            proptest::prop_assert_eq!(c.parts(ts), (c.day(ts), c.hour(ts), c.hour_of_day(ts)));
        }

        /// The offset `offset_span` gives holds at every instant of its span (the keeper
        /// reuses it for them), including around changes to and from summer time.
        #[test]
        fn offset_spans_hold(ts in 0i64..4_000_000_000_000, zone in 0usize..5, at in 0.0f64..1.0) {
            let zones = ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
            let c = LocalClock::new(zones[zone].parse().unwrap());
            let (offset, (lo, hi)) = c.offset_span(ts);
            proptest::prop_assert!(lo <= ts && ts < hi);
            proptest::prop_assert_eq!(ts + offset, c.local(ts));
            // Probe the span's ends, a random instant in it, and each hour.
            let probe = lo + ((hi - lo - 1) as f64 * at) as i64;
            for t in [lo, hi - 1, probe].into_iter().chain((lo..hi).step_by(HOUR_MS as usize)) {
                proptest::prop_assert_eq!(t + offset, c.local(t), "at {}", t);
            }
        }
    }

    /// Every day of seven years in zones with summer time (and a half-hour one), probed
    /// every quarter hour: the offset `offset_span` gives holds over its whole span, and
    /// days with a change get a span of one instant.
    #[test]
    fn offset_spans_hold_across_summer_time() {
        for zone in [
            "America/New_York",
            "Australia/Lord_Howe",
            "America/Santiago",
            "Europe/London",
        ] {
            let c = LocalClock::new(zone.parse().unwrap());
            let mut changes = 0;
            for day in 18_262..20_819 {
                for ts in (day * DAY_MS..(day + 1) * DAY_MS).step_by(15 * 60_000) {
                    let (offset, (lo, hi)) = c.offset_span(ts);
                    assert!(lo <= ts && ts < hi);
                    if hi - lo == 1 {
                        changes += 1;
                        continue;
                    }
                    for t in (lo..hi).step_by(15 * 60_000).chain([hi - 1]) {
                        assert_eq!(t + offset, c.local(t), "{zone} at {t}");
                    }
                }
            }
            // At least one day a year with a change inside it (Santiago changes at
            // midnight, so some of its changes fall between days), probed 96 times.
            assert!(changes >= 7 * 90, "{zone}: {changes}");
        }
    }
}
