//! Logging in and out, the first-user setup, and what the dashboard needs to know at start.

use crate::accounts::AccountError;
use crate::auth::{self, SESSION_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Small JSON bodies only: a user name and a password.
const MAX_BODY: usize = 8 * 1024;

/// Reads a JSON body, insisting on the JSON content type: a cross-site HTML form can't send
/// it, and a cross-site script can't without a CORS preflight, which these routes refuse.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/json"));
    if !is_json {
        return Err(ApiError::BadRequest(
            "Content-Type must be application/json".into(),
        ));
    }
    let bytes = crate::http::read_body(body, MAX_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

/// Runs an account operation on a blocking thread — argon2 takes tens of milliseconds of
/// CPU, which must not stall the async workers — once a hashing slot is free.
async fn off_thread<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        st.access.accounts.hashing.acquire(),
    )
    .await
    .map_err(|_| AccountError::Busy)?
    .map_err(|_| AccountError::Busy)?;
    crate::http::blocking(f).await
}

/// `Secure` when the request came over HTTPS (directly or as a proxy says), so a plain-HTTP
/// install on localhost still works.
fn cookie(st: &AppState, headers: &HeaderMap, value: &str, max_age_s: i64) -> HeaderValue {
    let https = st.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let c = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn logged_in(
    st: &AppState,
    headers: &HeaderMap,
    token: &str,
    s: &crate::accounts::Session,
) -> Response {
    let mut r = Json(json!({ "user": s.username, "csrf": s.csrf })).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        cookie(st, headers, token, crate::accounts::SESSION_TTL_MS / 1000),
    );
    r
}

/// `GET /api/dashboard/state`
pub async fn state(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let session = auth::session(&st, &headers);
    let public: Vec<String> = st
        .ingest
        .sites
        .list()
        .into_iter()
        .filter(|(_, i)| i.public)
        .map(|(s, _)| s.to_string())
        .collect();
    let mut r = Json(json!({
        "setup_required": st.access.accounts.setup_required(),
        "user": session.as_ref().map(|(_, s)| &s.username),
        "csrf": session.as_ref().map(|(_, s)| &s.csrf),
        "public_sites": public,
        "demo": st.config.demo,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `POST /api/dashboard/login`
pub async fn login(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let c: Credentials = json_body(&headers, body).await?;
    let now = st.clock.now().0;
    let client =
        crate::ingest::client_ip::client_ip(peer.ip(), &headers, &st.config.trusted_proxies);
    let st2 = st.clone();
    let (token, session) = off_thread(&st, move || {
        st2.access
            .accounts
            .login(&c.username, &c.password, client, now)
    })
    .await?;
    tracing::info!(user = %session.username, "dashboard login");
    Ok(logged_in(&st, &headers, &token, &session))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    token: String,
    username: String,
    password: String,
}

/// `POST /api/dashboard/setup`: the first user, with the setup token from the log.
pub async fn setup(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let s: Setup = json_body(&headers, body).await?;
    let now = st.clock.now().0;
    let st2 = st.clone();
    let (token, session) = off_thread(&st, move || {
        st2.access
            .accounts
            .setup(s.token.trim(), &s.username, &s.password, now)
    })
    .await?;
    tracing::info!(user = %session.username, "first dashboard user created");
    Ok(logged_in(&st, &headers, &token, &session))
}

/// `POST /api/dashboard/logout`
pub async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (token, _) = auth::require_user_change(&st, &headers)?;
    let st2 = st.clone();
    crate::http::blocking(move || st2.access.accounts.logout(&token)).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie(&st, &headers, "", 0));
    Ok(r)
}

/// `POST /api/admin/users` (admin token): add a user or set their password.
pub async fn add_user(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    auth::require_admin(&st, &headers)?;
    let bytes = crate::http::read_body(body, MAX_BODY).await?;
    let u: Credentials =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let now = st.clock.now().0;
    let st2 = st.clone();
    let name = u.username.clone();
    let created = off_thread(&st, move || {
        st2.access.accounts.add_user(&u.username, &u.password, now)
    })
    .await?;
    Ok((
        crate::admin::created_status(created),
        Json(json!({ "username": name, "created": created })),
    )
        .into_response())
}
