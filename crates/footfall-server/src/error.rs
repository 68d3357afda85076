//! Every error a route can return, and its HTTP mapping, in one place.

use crate::accounts::AccountError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use footfall_core::decode::DecodeError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("missing or invalid credentials: log in, or send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("these credentials may not do that")]
    Forbidden,
    #[error("missing or wrong X-CSRF-Token header; reload the dashboard")]
    CsrfRejected,
    #[error("this key's request budget is used up; try again later")]
    TooManyRequests,
    #[error(transparent)]
    Query(#[from] footfall_core::query::QueryError),
    #[error("{0}")]
    NotFound(String),
    /// The change would take something another resource holds.
    #[error("{0}")]
    Conflict(String),
    /// The detail is logged, never sent.
    #[error("the event store is unavailable; try again shortly")]
    Unavailable(String),
    /// The log refused the write: nothing of the request was recorded. Logged, never sent.
    #[error("the events could not be made durable and nothing was recorded; try again shortly")]
    NotDurable(String),
    /// Cluster mode: the backlog waiting for storage is at its limit. Nothing of the
    /// request was recorded; the message says so, since the client can do something
    /// about it (retry later).
    #[error("the backlog waiting for storage is full and nothing was recorded; try again later")]
    BacklogFull(String),
    #[error("shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal(String),
    #[error(transparent)]
    Account(#[from] crate::accounts::AccountError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Decode(_) | ApiError::BadRequest(_) | ApiError::Query(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::CsrfRejected => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_)
            | ApiError::NotDurable(_)
            | ApiError::BacklogFull(_)
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Account(e) => match e {
                AccountError::Invalid(_) => StatusCode::BAD_REQUEST,
                AccountError::BadCredentials | AccountError::BadSetupToken => {
                    StatusCode::UNAUTHORIZED
                }
                AccountError::Throttled => StatusCode::TOO_MANY_REQUESTS,
                AccountError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                AccountError::Store(_) | AccountError::Hash(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl From<crate::pipeline::sites::ClientIdError> for ApiError {
    fn from(e: crate::pipeline::sites::ClientIdError) -> Self {
        use crate::pipeline::sites::ClientIdError;
        match e {
            ClientIdError::Taken { .. } => ApiError::Conflict(e.to_string()),
            ClientIdError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            ClientIdError::UnknownSite(_) => ApiError::NotFound(e.to_string()),
            ClientIdError::Store(s) => s.into(),
        }
    }
}

impl From<crate::pipeline::sites::GoalChangeError> for ApiError {
    fn from(e: crate::pipeline::sites::GoalChangeError) -> Self {
        use crate::pipeline::sites::GoalChangeError;
        match e {
            GoalChangeError::UnknownSite(_) => ApiError::NotFound(e.to_string()),
            GoalChangeError::TooMany
            | GoalChangeError::TooManyFunnels
            | GoalChangeError::TooManySegments
            | GoalChangeError::SegmentTaken(_) => ApiError::Conflict(e.to_string()),
            GoalChangeError::NotYours(_) => ApiError::Forbidden,
            GoalChangeError::UnknownStep(..) => ApiError::BadRequest(e.to_string()),
            GoalChangeError::Store(s) => s.into(),
        }
    }
}

impl From<footfall_core::segment::SegmentError> for ApiError {
    fn from(e: footfall_core::segment::SegmentError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<footfall_core::goal::GoalError> for ApiError {
    fn from(e: footfall_core::goal::GoalError) -> Self {
        ApiError::BadRequest(format!("goal: {e}"))
    }
}

/// A store that failed: the caller may retry; the detail is logged, never sent.
impl From<footfall_store::StoreError> for ApiError {
    fn from(e: footfall_store::StoreError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl ApiError {
    /// The status and JSON body sent for this error (logging what is not sent): for a
    /// response, or for one query's slot in a batch.
    pub fn to_json(&self) -> (StatusCode, serde_json::Value) {
        if let ApiError::Internal(detail)
        | ApiError::Unavailable(detail)
        | ApiError::NotDurable(detail)
        | ApiError::BacklogFull(detail) = self
        {
            tracing::error!(%detail, "request failed");
        }
        if let ApiError::Account(e @ (AccountError::Store(_) | AccountError::Hash(_))) = self {
            tracing::error!(error = %e, "account operation failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": "internal error" }),
            );
        }
        (
            self.status(),
            serde_json::json!({ "error": self.to_string() }),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.to_json();
        (status, Json(body)).into_response()
    }
}

impl From<crate::ingest::WriteError> for ApiError {
    fn from(e: crate::ingest::WriteError) -> Self {
        match e {
            crate::ingest::WriteError::NotDurable(d) => ApiError::NotDurable(d),
            crate::ingest::WriteError::BacklogFull(d) => ApiError::BacklogFull(d),
        }
    }
}
