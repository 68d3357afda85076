//! Date ranges and time buckets in the site's time zone, DST-correct: every boundary is a
//! local midnight (or local hour) converted to UTC by chrono-tz, never "UTC ± fixed offset".

use super::model::{Comparison, DateRange, TimeBucket};
use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// A half-open UTC interval `[start, end)` in unix milliseconds, plus the local dates it
/// covers (for labels and comparisons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub start: i64,
    pub end: i64,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Whether the range was given as exact datetimes (comparisons shift by duration).
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub start: i64,
    pub end: i64,
    pub label: String,
}

/// UTC milliseconds of a local wall-clock time; in a DST gap, the first valid instant after.
pub fn local_to_utc(tz: Tz, t: NaiveDateTime) -> i64 {
    let mut t = t;
    for _ in 0..(4 * 60) {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(d) => return d.timestamp_millis(),
            LocalResult::Ambiguous(a, _) => return a.timestamp_millis(),
            LocalResult::None => t += Duration::minutes(1),
        }
    }
    t.and_utc().timestamp_millis()
}

pub fn midnight(tz: Tz, d: NaiveDate) -> i64 {
    local_to_utc(tz, d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

pub fn local_date(tz: Tz, ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.with_timezone(&tz).date_naive())
        .unwrap_or_default()
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn add_months(d: NaiveDate, months: i32) -> NaiveDate {
    let total = d.year() * 12 + d.month0() as i32 + months;
    let (y, m0) = (total.div_euclid(12), total.rem_euclid(12) as u32);
    let last = days_in_month(y, m0 + 1);
    NaiveDate::from_ymd_opt(y, m0 + 1, d.day().min(last)).unwrap_or(d)
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

fn days(tz: Tz, first: NaiveDate, last: NaiveDate) -> Resolved {
    Resolved {
        start: midnight(tz, first),
        end: midnight(tz, last.succ_opt().unwrap_or(last)),
        first_day: first,
        last_day: last,
        exact: false,
    }
}

/// Resolves a range. `today` is the current local date in `tz`; `first_event` the site's
/// first event (for `all`).
pub fn resolve(range: &DateRange, tz: Tz, today: NaiveDate, first_event: Option<i64>) -> Resolved {
    match range {
        DateRange::Day => days(tz, today, today),
        DateRange::LastDays(n) => days(tz, today - Duration::days(i64::from(*n) - 1), today),
        DateRange::Month => days(tz, month_start(today), today),
        DateRange::LastMonths(n) => {
            days(tz, add_months(month_start(today), -(*n as i32 - 1)), today)
        }
        DateRange::Year => days(
            tz,
            NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today),
            today,
        ),
        DateRange::All => days(
            tz,
            first_event
                .map(|t| local_date(tz, t))
                .unwrap_or(today)
                .min(today),
            today,
        ),
        DateRange::Dates(a, b) => days(tz, *a, *b),
        DateRange::Datetimes(a, b) => Resolved {
            start: *a,
            end: b + 1,
            first_day: local_date(tz, *a),
            last_day: local_date(tz, *b),
            exact: true,
        },
    }
}

/// The zone's UTC offset at an instant, in milliseconds.
pub fn offset_ms(tz: Tz, utc_ms: i64) -> i64 {
    use chrono::Offset;
    chrono::DateTime::from_timestamp_millis(utc_ms)
        .map(|d| {
            i64::from(
                tz.offset_from_utc_datetime(&d.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ) * 1000
        })
        .unwrap_or(0)
}

/// The stretches of constant UTC offset in `[start, end)`: (first UTC ms, offset ms). Found
/// by checking each hour and narrowing each change to the minute.
pub fn offset_segments(tz: Tz, start: i64, end: i64) -> Vec<(i64, i64)> {
    let mut out = vec![(start, offset_ms(tz, start))];
    let mut t = start;
    while t < end {
        let next = (t + 3_600_000).min(end);
        let off = offset_ms(tz, next);
        if off != out.last().map_or(0, |s| s.1) && next < end {
            // The change lies in (t, next]: find its minute.
            let mut lo = t;
            let mut hi = next;
            while hi - lo > 60_000 {
                let mid = lo + (hi - lo) / 2;
                if offset_ms(tz, mid) == off {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            out.push((hi - hi.rem_euclid(60_000), off));
        }
        t = next;
    }
    out
}

/// The range a comparison looks at.
pub fn compare(r: &Resolved, how: Comparison, tz: Tz) -> Resolved {
    match (how, r.exact) {
        (Comparison::PreviousPeriod, true) => {
            let len = r.end - r.start;
            Resolved {
                start: r.start - len,
                end: r.start,
                first_day: local_date(tz, r.start - len),
                last_day: local_date(tz, r.start - 1),
                exact: true,
            }
        }
        (Comparison::PreviousPeriod, false) => {
            let n = (r.last_day - r.first_day).num_days() + 1;
            days(
                tz,
                r.first_day - Duration::days(n),
                r.first_day - Duration::days(1),
            )
        }
        (Comparison::YearOverYear, true) => {
            // The same wall-clock instants a year earlier.
            let back = |ms: i64| {
                let local = chrono::DateTime::from_timestamp_millis(ms)
                    .map(|d| d.with_timezone(&tz).naive_local())
                    .unwrap_or_default();
                local_to_utc(tz, add_months(local.date(), -12).and_time(local.time()))
            };
            let (start, end) = (back(r.start), back(r.end));
            Resolved {
                start,
                end,
                first_day: local_date(tz, start),
                last_day: local_date(tz, end - 1),
                exact: true,
            }
        }
        (Comparison::YearOverYear, false) => days(
            tz,
            add_months(r.first_day, -12),
            add_months(r.last_day, -12),
        ),
    }
}

/// The bucket `time` means for this range: hours for one day, days up to a month,
/// months beyond.
pub fn auto_bucket(r: &Resolved) -> TimeBucket {
    // Plausible's rule: hours for a single day, days up to a month, months beyond.
    if r.first_day == r.last_day {
        TimeBucket::Hour
    } else if add_months(r.first_day, 1) > r.last_day {
        TimeBucket::Day
    } else {
        TimeBucket::Month
    }
}

/// Every bucket overlapping the range, clipped to it, labelled as Plausible labels them
/// (`2024-01-27T13:00:00` local for hours, `2024-01-27` for days, the first day for weeks and
/// months). Capped at `max` buckets.
pub fn buckets(r: &Resolved, bucket: TimeBucket, tz: Tz, max: usize) -> Vec<Bucket> {
    let mut out = Vec::new();
    let mut day = match bucket {
        TimeBucket::Hour | TimeBucket::Day => r.first_day,
        TimeBucket::Week => {
            r.first_day - Duration::days(i64::from(r.first_day.weekday().num_days_from_monday()))
        }
        TimeBucket::Month => month_start(r.first_day),
    };
    while day <= r.last_day && out.len() < max {
        let next = match bucket {
            TimeBucket::Hour | TimeBucket::Day => day.succ_opt().unwrap_or(day),
            TimeBucket::Week => day + Duration::days(7),
            TimeBucket::Month => add_months(day, 1),
        };
        if bucket == TimeBucket::Hour {
            for h in 0..24 {
                let lo = day.and_hms_opt(h, 0, 0).unwrap_or_default();
                let start = local_to_utc(tz, lo);
                let end = if h == 23 {
                    midnight(tz, next)
                } else {
                    local_to_utc(tz, day.and_hms_opt(h + 1, 0, 0).unwrap_or_default())
                };
                // Skipped hours (spring forward) are empty; repeated ones (fall back) are
                // folded into the first.
                if end > start {
                    push_clipped(
                        &mut out,
                        r,
                        start,
                        end,
                        lo.format("%Y-%m-%dT%H:00:00").to_string(),
                    );
                }
            }
        } else {
            // A week cut by the range's start is labelled with the range's first day.
            let label_day = if bucket == TimeBucket::Week {
                day.max(r.first_day)
            } else {
                day
            };
            push_clipped(
                &mut out,
                r,
                midnight(tz, day),
                midnight(tz, next),
                label_day.format("%Y-%m-%d").to_string(),
            );
        }
        if next == day {
            break;
        }
        day = next;
    }
    out
}

fn push_clipped(out: &mut Vec<Bucket>, r: &Resolved, start: i64, end: i64, label: String) {
    let (s, e) = (start.max(r.start), end.min(r.end));
    if s < e {
        out.push(Bucket {
            start: s,
            end: e,
            label,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges_relative_to_today() {
        let tz = chrono_tz::UTC;
        let today = d("2024-03-15");
        let r = resolve(&DateRange::LastDays(7), tz, today, None);
        assert_eq!((r.first_day, r.last_day), (d("2024-03-09"), today));
        let r = resolve(&DateRange::Month, tz, today, None);
        assert_eq!(r.first_day, d("2024-03-01"));
        let r = resolve(&DateRange::LastMonths(6), tz, today, None);
        assert_eq!(r.first_day, d("2023-10-01"));
        let r = resolve(&DateRange::LastMonths(12), tz, today, None);
        assert_eq!(r.first_day, d("2023-04-01"));
        let r = resolve(&DateRange::Year, tz, today, None);
        assert_eq!(r.first_day, d("2024-01-01"));
        assert_eq!(r.end - r.start, 75 * 86_400_000);
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let spring = resolve(
            &DateRange::Dates(d("2024-03-31"), d("2024-03-31")),
            tz,
            d("2024-04-01"),
            None,
        );
        assert_eq!(spring.end - spring.start, 23 * 3_600_000);
        let hours = buckets(&spring, TimeBucket::Hour, tz, 1000);
        assert_eq!(hours.len(), 23, "02:00 does not exist that day");
        assert!(hours.iter().all(|b| !b.label.contains("T02:")));
        let autumn = resolve(
            &DateRange::Dates(d("2024-10-27"), d("2024-10-27")),
            tz,
            d("2024-11-01"),
            None,
        );
        assert_eq!(autumn.end - autumn.start, 25 * 3_600_000);
        let hours = buckets(&autumn, TimeBucket::Hour, tz, 1000);
        assert_eq!(hours.len(), 24);
        assert_eq!(
            hours
                .iter()
                .find(|b| b.label.ends_with("T02:00:00"))
                .map(|b| b.end - b.start),
            Some(2 * 3_600_000),
            "02:00 happens twice"
        );
        // Berlin midnight is 23:00 UTC in winter.
        assert_eq!(
            midnight(tz, d("2024-01-01")),
            chrono::DateTime::parse_from_rfc3339("2023-12-31T23:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn comparisons() {
        let tz = chrono_tz::UTC;
        let r = resolve(
            &DateRange::Dates(d("2024-03-01"), d("2024-03-10")),
            tz,
            d("2024-04-01"),
            None,
        );
        let p = compare(&r, Comparison::PreviousPeriod, tz);
        assert_eq!(
            (p.first_day, p.last_day),
            (d("2024-02-20"), d("2024-02-29"))
        );
        let y = compare(&r, Comparison::YearOverYear, tz);
        assert_eq!(
            (y.first_day, y.last_day),
            (d("2023-03-01"), d("2023-03-10"))
        );
    }

    #[test]
    fn weeks_and_months_start_on_monday_and_the_first() {
        let tz = chrono_tz::UTC;
        let r = resolve(
            &DateRange::Dates(d("2024-01-03"), d("2024-02-14")),
            tz,
            d("2024-03-01"),
            None,
        );
        let w = buckets(&r, TimeBucket::Week, tz, 100);
        assert_eq!(
            w[0].label, "2024-01-03",
            "a cut week is labelled with the range's first day"
        );
        assert_eq!(w[1].label, "2024-01-08");
        assert_eq!(w[0].start, r.start, "clipped to the range");
        let m = buckets(&r, TimeBucket::Month, tz, 100);
        assert_eq!(
            m.iter().map(|b| b.label.as_str()).collect::<Vec<_>>(),
            vec!["2024-01-01", "2024-02-01"]
        );
    }

    #[test]
    fn default_buckets_follow_plausible() {
        let tz = chrono_tz::UTC;
        let b =
            |a: &str, z: &str| auto_bucket(&resolve(&DateRange::Dates(d(a), d(z)), tz, d(z), None));
        assert_eq!(b("2024-03-01", "2024-03-01"), TimeBucket::Hour);
        assert_eq!(b("2024-03-01", "2024-03-02"), TimeBucket::Day);
        assert_eq!(b("2024-03-01", "2024-03-31"), TimeBucket::Day);
        assert_eq!(b("2024-03-01", "2024-04-01"), TimeBucket::Month);
    }

    #[test]
    fn year_over_year_keeps_exact_times() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        let r = resolve(
            &DateRange::Datetimes(
                t("2024-03-10T10:00:00+01:00"),
                t("2024-03-10T11:59:59+01:00"),
            ),
            tz,
            d("2024-04-01"),
            None,
        );
        let y = compare(&r, Comparison::YearOverYear, tz);
        assert_eq!(
            (y.start, y.end),
            (
                t("2023-03-10T10:00:00+01:00"),
                t("2023-03-10T11:59:59+01:00") + 1
            )
        );
        let leap = resolve(
            &DateRange::Dates(d("2024-02-29"), d("2024-02-29")),
            tz,
            d("2024-03-01"),
            None,
        );
        assert_eq!(
            compare(&leap, Comparison::YearOverYear, tz).first_day,
            d("2023-02-28")
        );
    }

    #[test]
    fn offset_segments_find_dst_changes() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let r = resolve(
            &DateRange::Dates(d("2024-03-30"), d("2024-04-01")),
            tz,
            d("2024-04-02"),
            None,
        );
        let segs = offset_segments(tz, r.start, r.end);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].1, 3_600_000);
        assert_eq!(
            segs[1],
            (
                chrono::DateTime::parse_from_rfc3339("2024-03-31T01:00:00Z")
                    .unwrap()
                    .timestamp_millis(),
                7_200_000
            )
        );
    }

    proptest! {
        /// Buckets tile the range exactly: no gaps, no overlaps, in any zone, any bucket.
        #[test]
        fn buckets_tile_the_range(start in 0i64..4000, len in 0i64..400, zone in 0usize..5, b in 0usize..4) {
            let zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
            let tz: Tz = zones[zone].parse().unwrap();
            let first = d("2015-01-01") + Duration::days(start);
            let r = resolve(&DateRange::Dates(first, first + Duration::days(len)), tz, first, None);
            let bucket = [TimeBucket::Hour, TimeBucket::Day, TimeBucket::Week, TimeBucket::Month][b];
            let bs = buckets(&r, bucket, tz, 100_000);
            prop_assert_eq!(bs.first().map(|x| x.start), Some(r.start));
            prop_assert_eq!(bs.last().map(|x| x.end), Some(r.end));
            for w in bs.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
                prop_assert!(w[0].start < w[0].end);
            }
        }
    }
}
