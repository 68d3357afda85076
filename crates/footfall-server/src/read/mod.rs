//! Read routes: the live stats object, as JSON and as a Server-Sent Events stream.

pub mod funnel;
pub mod query;
pub mod stats;
pub mod stream;
pub mod v1;
