//! The footfall server: HTTP in (ingest), the writer that makes events durable and keeps
//! the live state (pipeline), and HTTP out (read). `serve` wires them together.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod read;

pub use app::{start, Running};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::ServerConfig;
