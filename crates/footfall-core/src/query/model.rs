//! The typed query: what Plausible's Stats API v2 can ask, validated once.

use chrono_tz::Tz;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Events,
    Percentage,
    TimeOnPage,
    ScrollDepth,
    /// Converted visitors out of all visitors (goal and property filters aside), in %.
    ConversionRate,
    /// The same within each row's group of the other dimensions.
    GroupConversionRate,
    /// Revenue of revenue-goal conversions, in the goal's currency ([`super::revenue`]).
    TotalRevenue,
    /// The same per conversion carrying revenue.
    AverageRevenue,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::Events,
        Metric::Percentage,
        Metric::TimeOnPage,
        Metric::ScrollDepth,
        Metric::ConversionRate,
        Metric::GroupConversionRate,
        Metric::TotalRevenue,
        Metric::AverageRevenue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Visits => "visits",
            Metric::Pageviews => "pageviews",
            Metric::ViewsPerVisit => "views_per_visit",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::Events => "events",
            Metric::Percentage => "percentage",
            Metric::TimeOnPage => "time_on_page",
            Metric::ScrollDepth => "scroll_depth",
            Metric::ConversionRate => "conversion_rate",
            Metric::GroupConversionRate => "group_conversion_rate",
            Metric::TotalRevenue => "total_revenue",
            Metric::AverageRevenue => "average_revenue",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Metrics computed per visit, which can't be split by an event dimension.
    pub fn is_session_only(self) -> bool {
        matches!(
            self,
            Metric::BounceRate | Metric::VisitDuration | Metric::ViewsPerVisit
        )
    }

    /// Metrics that only mean something for a goal (an `event:goal` dimension or filter).
    pub fn needs_goal(self) -> bool {
        matches!(self, Metric::ConversionRate | Metric::GroupConversionRate)
    }

    /// Metrics a breakdown by goal can give: counts of conversions and their rates.
    pub fn splits_by_goal(self) -> bool {
        matches!(
            self,
            Metric::Visitors
                | Metric::Visits
                | Metric::Events
                | Metric::Percentage
                | Metric::ConversionRate
                | Metric::GroupConversionRate
                | Metric::TotalRevenue
                | Metric::AverageRevenue
        )
    }
}

/// A column of a visit (taken from its first event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VisitProp {
    Source,
    Referrer,
    UtmMedium,
    UtmSource,
    UtmCampaign,
    UtmContent,
    UtmTerm,
    Country,
    Region,
    City,
    Browser,
    BrowserVersion,
    Os,
    OsVersion,
    Device,
    EntryPage,
    ExitPage,
}

impl VisitProp {
    pub const ALL: [VisitProp; 17] = [
        VisitProp::Source,
        VisitProp::Referrer,
        VisitProp::UtmMedium,
        VisitProp::UtmSource,
        VisitProp::UtmCampaign,
        VisitProp::UtmContent,
        VisitProp::UtmTerm,
        VisitProp::Country,
        VisitProp::Region,
        VisitProp::City,
        VisitProp::Browser,
        VisitProp::BrowserVersion,
        VisitProp::Os,
        VisitProp::OsVersion,
        VisitProp::Device,
        VisitProp::EntryPage,
        VisitProp::ExitPage,
    ];

    /// The API name after `visit:`.
    pub fn name(self) -> &'static str {
        match self {
            VisitProp::Source => "source",
            VisitProp::Referrer => "referrer",
            VisitProp::UtmMedium => "utm_medium",
            VisitProp::UtmSource => "utm_source",
            VisitProp::UtmCampaign => "utm_campaign",
            VisitProp::UtmContent => "utm_content",
            VisitProp::UtmTerm => "utm_term",
            VisitProp::Country => "country",
            VisitProp::Region => "region",
            VisitProp::City => "city",
            VisitProp::Browser => "browser",
            VisitProp::BrowserVersion => "browser_version",
            VisitProp::Os => "os",
            VisitProp::OsVersion => "os_version",
            VisitProp::Device => "device",
            VisitProp::EntryPage => "entry_page",
            VisitProp::ExitPage => "exit_page",
        }
    }

    /// Entry and exit pages are known only for the visit as a whole; every other visit
    /// attribute is fixed by its first event and copied onto each event.
    pub fn changes_during_visit(self) -> bool {
        matches!(self, VisitProp::EntryPage | VisitProp::ExitPage)
    }

    /// The `sessions` (and `events`) column: a fixed identifier, never input.
    pub fn column(self) -> &'static str {
        match self {
            VisitProp::Source => "referrer_source",
            other => other.name(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeBucket {
    Hour,
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Page,
    Name,
    Hostname,
    Prop(String),
    /// `event:goal`: the site's goals, by name; an event counts for each goal it converts.
    Goal,
    Visit(VisitProp),
    /// `time`: the bucket follows from the date range.
    Time(Option<TimeBucket>),
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "event:page" => Dimension::Page,
            "event:name" => Dimension::Name,
            "event:hostname" => Dimension::Hostname,
            "event:goal" => Dimension::Goal,
            "time" => Dimension::Time(None),
            "time:hour" => Dimension::Time(Some(TimeBucket::Hour)),
            "time:day" => Dimension::Time(Some(TimeBucket::Day)),
            "time:week" => Dimension::Time(Some(TimeBucket::Week)),
            "time:month" => Dimension::Time(Some(TimeBucket::Month)),
            _ => {
                if let Some(key) = s.strip_prefix("event:props:") {
                    if key.is_empty() || key.len() > 300 {
                        return None;
                    }
                    return Some(Dimension::Prop(key.to_string()));
                }
                let name = s.strip_prefix("visit:")?;
                Dimension::Visit(VisitProp::ALL.into_iter().find(|p| p.name() == name)?)
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Dimension::Page => "event:page".into(),
            Dimension::Name => "event:name".into(),
            Dimension::Hostname => "event:hostname".into(),
            Dimension::Prop(k) => format!("event:props:{k}"),
            Dimension::Goal => "event:goal".into(),
            Dimension::Visit(p) => format!("visit:{}", p.name()),
            Dimension::Time(None) => "time".into(),
            Dimension::Time(Some(TimeBucket::Hour)) => "time:hour".into(),
            Dimension::Time(Some(TimeBucket::Day)) => "time:day".into(),
            Dimension::Time(Some(TimeBucket::Week)) => "time:week".into(),
            Dimension::Time(Some(TimeBucket::Month)) => "time:month".into(),
        }
    }

    /// Event dimensions describe single events; splitting visit metrics by them is invalid.
    pub fn is_event(&self) -> bool {
        matches!(
            self,
            Dimension::Page
                | Dimension::Name
                | Dimension::Hostname
                | Dimension::Prop(_)
                | Dimension::Goal
        )
    }

    pub fn is_time(&self) -> bool {
        matches!(self, Dimension::Time(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    Matches,
    MatchesNot,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "is" => Op::Is,
            "is_not" => Op::IsNot,
            "contains" => Op::Contains,
            "contains_not" => Op::ContainsNot,
            "matches" => Op::Matches,
            "matches_not" => Op::MatchesNot,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Is => "is",
            Op::IsNot => "is_not",
            Op::Contains => "contains",
            Op::ContainsNot => "contains_not",
            Op::Matches => "matches",
            Op::MatchesNot => "matches_not",
        }
    }

    pub fn negated(self) -> bool {
        matches!(self, Op::IsNot | Op::ContainsNot | Op::MatchesNot)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub dimension: Dimension,
    pub values: Vec<String>,
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Condition(Condition),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `has_done` (true) / `has_not_done` (false): the visitors who did, or never did, in the
    /// range, something the inner filter (on event dimensions only) describes.
    Behaviour(bool, Box<Filter>),
}

impl Filter {
    pub fn conditions(&self) -> Vec<&Condition> {
        match self {
            Filter::Condition(c) => vec![c],
            Filter::And(v) | Filter::Or(v) => v.iter().flat_map(|f| f.conditions()).collect(),
            Filter::Not(f) | Filter::Behaviour(_, f) => f.conditions(),
        }
    }

    /// The conditions on the rows this filter selects — those inside a behavioural filter
    /// select other rows (its visitors'), so they are left out.
    pub fn own_conditions(&self) -> Vec<&Condition> {
        match self {
            Filter::Condition(c) => vec![c],
            Filter::And(v) | Filter::Or(v) => v.iter().flat_map(|f| f.own_conditions()).collect(),
            Filter::Not(f) => f.own_conditions(),
            Filter::Behaviour(..) => Vec::new(),
        }
    }

    pub fn has_behaviour(&self) -> bool {
        match self {
            Filter::Condition(_) => false,
            Filter::And(v) | Filter::Or(v) => v.iter().any(Filter::has_behaviour),
            Filter::Not(f) => f.has_behaviour(),
            Filter::Behaviour(..) => true,
        }
    }
}

/// A date range as asked; resolved against the site's time zone and "today" by
/// [`crate::query::time`].
#[derive(Debug, Clone, PartialEq)]
pub enum DateRange {
    Day,
    LastDays(u32),
    Month,
    LastMonths(u32),
    Year,
    All,
    Dates(chrono::NaiveDate, chrono::NaiveDate),
    /// Unix milliseconds, end inclusive as sent.
    Datetimes(i64, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    PreviousPeriod,
    YearOverYear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderKey {
    Metric(Metric),
    Dimension(Dimension),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Include {
    pub time_labels: bool,
    pub total_rows: bool,
    pub compare: Option<Comparison>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub site: String,
    pub date_range: DateRange,
    /// "Today" for relative ranges, in the site's zone; None: the real today.
    pub relative_date: Option<chrono::NaiveDate>,
    pub timezone: Tz,
    pub metrics: Vec<Metric>,
    pub dimensions: Vec<Dimension>,
    pub filters: Vec<Filter>,
    pub order_by: Vec<(OrderKey, Direction)>,
    pub limit: usize,
    pub offset: usize,
    pub include: Include,
}

impl Query {
    pub fn time_dimension(&self) -> Option<&Dimension> {
        self.dimensions.iter().find(|d| d.is_time())
    }

    pub fn all_conditions(&self) -> Vec<&Condition> {
        self.filters.iter().flat_map(|f| f.conditions()).collect()
    }

    /// Whether the query counts conversions: an `event:goal` dimension or condition (one
    /// inside a behavioural filter picks visitors, not conversions).
    pub fn about_goals(&self) -> bool {
        self.dimensions.contains(&Dimension::Goal)
            || self
                .filters
                .iter()
                .flat_map(Filter::own_conditions)
                .any(|c| c.dimension == Dimension::Goal)
    }
}
