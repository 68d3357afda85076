//! decode: one adapter per wire format, all producing [`IncomingEvent`].
//!
//! Every adapter validates completely before anything is stored, and every error names
//! the field that is wrong, so that a client developer can fix the call from the message.

mod fields;
pub mod openpanel;
pub mod plausible;
pub mod seed;

use thiserror::Error;

/// Plausible's own limits, so that a body Plausible accepts is accepted here too.
pub mod limits {
    pub const NAME: usize = 120;
    pub const URL: usize = 2000;
    pub const REFERRER: usize = 2000;
    pub const DOMAIN: usize = 253 * 4;
    pub const PROPS: usize = 30;
    pub const PROP_KEY: usize = 300;
    pub const PROP_VALUE: usize = 2000;
    pub const TITLE: usize = 500;
    pub const CLIENT_ID: usize = 128;
    pub const PAGE_TYPE: usize = 60;
    pub const GEO_TEXT: usize = 120;
    pub const USER_AGENT: usize = 1000;
    /// Largest body accepted by the single-event routes.
    pub const BODY_BYTES: usize = 64 * 1024;
    /// Events in one `POST /api/events` batch, and its body size.
    pub const BATCH_EVENTS: usize = 1000;
    pub const BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("request body is not valid UTF-8")]
    Utf8,
    #[error("request body must be a JSON {0}")]
    NotAnObject(&'static str),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("field `{field}` is longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
    #[error("batch holds {0} events; at most {max} are allowed", max = limits::BATCH_EVENTS)]
    BatchTooLarge(usize),
    #[error("event {index} in batch: {error}")]
    InBatch {
        index: usize,
        error: Box<DecodeError>,
    },
}

/// Parses a body as JSON, distinguishing invalid UTF-8 from invalid JSON.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::Utf8)?;
    serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))
}
