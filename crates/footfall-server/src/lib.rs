//! The footfall server: HTTP in (ingest), the stages that make events durable in the log and
//! apply them to the live state and storage (pipeline), and HTTP out (read). `serve` wires
//! them together.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod auth;
pub mod changes;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod content;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod read;
pub mod segments;
pub mod state;

pub use app::{start, start_with_log, Running};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::ServerConfig;
