//! Helpers every handler module shares: reading a bounded body, and running blocking store
//! calls off the async worker threads.

use crate::error::ApiError;
use axum::body::{Body, Bytes};

/// Reads the body up to `max` bytes; larger bodies are refused without reading them all.
pub async fn read_body(body: Body, max: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ApiError::BodyTooLarge(max))
}

/// Runs a blocking call (a store, a password hash) on the blocking pool, so it never stalls
/// the threads serving requests.
pub async fn blocking<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??)
}
