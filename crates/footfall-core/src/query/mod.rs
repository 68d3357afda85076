//! query: one typed query model for every read API (Plausible v2 and v1 shapes), validated
//! once, resolved against the site's time zone, and planned into SQL for a backend
//! dialect. No I/O: the store runs the SQL and hands rows back to [`result`].

pub mod dialect;
pub mod funnel;
pub mod goals;
pub mod legacy;
pub mod model;
pub mod parse;
pub mod plan;
pub mod result;
pub mod revenue;
pub mod rollup_plan;
pub mod time;

pub use model::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct QueryError {
    pub field: String,
    pub reason: String,
}

impl QueryError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        QueryError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
