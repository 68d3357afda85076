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
        let local = self.local(ts);
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
    }
}
