//! Who may read and administer. Readers of a site: the admin token, a logged-in dashboard
//! user (session cookie), the site's share link, or anyone if the site is public; the Stats
//! API also takes API keys scoped to sites.

use crate::accounts::Session;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use footfall_core::SiteId;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The dashboard's login cookie.
pub const SESSION_COOKIE: &str = "ff_session";
/// Where a share token travels; a `share=` query parameter is copied here (see
/// [`share_param_to_header`]) because EventSource can't set headers.
pub const SHARE_HEADER: &str = "x-footfall-share";

/// Compares in time independent of where the strings differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    match (&state.config.admin_token, bearer(headers)) {
        (Some(token), Some(given)) => same(token, given),
        _ => false,
    }
}

pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config.admin_token.is_none() {
        return Err(ApiError::Forbidden);
    }
    if is_admin(state, headers) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The value of one cookie from the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The logged-in dashboard user's session token and session, if the cookie is valid.
pub fn session(state: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let s = state.access.accounts.session(token, state.clock.now().0)?;
    Some((token.to_string(), s))
}

/// The site the request's share token opens, if any.
pub fn shared_site(state: &AppState, headers: &HeaderMap) -> Option<SiteId> {
    let token = headers.get(SHARE_HEADER)?.to_str().ok()?;
    state.ingest.sites.by_share_token(token)
}

/// Logged-in user, share link for this site, or a public site.
fn dashboard_reader(state: &AppState, headers: &HeaderMap, site: &SiteId) -> bool {
    session(state, headers).is_some()
        || shared_site(state, headers).is_some_and(|s| &s == site)
        || state.ingest.sites.is_public(site)
}

/// Reading a site's live stats: the admin token, a dashboard reader (see above).
pub fn require_read(state: &AppState, headers: &HeaderMap, site: &SiteId) -> Result<(), ApiError> {
    if is_admin(state, headers) || dashboard_reader(state, headers, site) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// A logged-in dashboard user making a change: the session, and the CSRF token that only
/// the dashboard's own pages can read, sent back in a header a cross-site form can't set.
pub fn require_user_change(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Session), ApiError> {
    let (token, s) = session(state, headers).ok_or(ApiError::Unauthorized)?;
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if same(sent, &s.csrf) {
        Ok((token, s))
    } else {
        Err(ApiError::CsrfRejected)
    }
}

/// Changing a site's settings (goals, funnels): the admin token, or a signed-in dashboard
/// user's change (session and CSRF token).
pub fn require_editor(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_admin(state, headers) {
        return Ok(());
    }
    require_user_change(state, headers).map(drop)
}

/// A change to a site that a key with `scope` may make too: the admin token, or an API key
/// for the site holding the scope (403 for a key without it).
pub fn require_scope(
    state: &AppState,
    headers: &HeaderMap,
    site: &SiteId,
    scope: &str,
) -> Result<(), ApiError> {
    if is_admin(state, headers) {
        return Ok(());
    }
    match bearer(headers) {
        Some(key) => match state.access.keys.check(key) {
            crate::keys::Check::Ok(info)
                if info.sites.contains(site) && info.scopes.iter().any(|s| s == scope) =>
            {
                Ok(())
            }
            crate::keys::Check::Ok(_) => Err(ApiError::Forbidden),
            crate::keys::Check::Limited => Err(ApiError::TooManyRequests),
            crate::keys::Check::Unknown => Err(ApiError::Unauthorized),
        },
        None => Err(ApiError::Unauthorized),
    }
}

/// Who is asking, for what is personal to a user (saved segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The admin token: sees and changes everything.
    Admin,
    /// A signed-in dashboard user.
    User(String),
    /// An API key, a share link or a public site's visitor: shared things only.
    Reader,
}

pub fn who(state: &AppState, headers: &HeaderMap) -> Who {
    if is_admin(state, headers) {
        Who::Admin
    } else if let Some((_, s)) = session(state, headers) {
        Who::User(s.username)
    } else {
        Who::Reader
    }
}

/// Reading a site's settings: the admin token or a signed-in dashboard user.
pub fn require_editor_read(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_admin(state, headers) || session(state, headers).is_some() {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Copies a `share=` query parameter into [`SHARE_HEADER`], so routes read credentials from
/// headers only.
pub async fn share_param_to_header(mut req: axum::extract::Request) -> axum::extract::Request {
    let token = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "share")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(v) = token.and_then(|t| axum::http::HeaderValue::from_str(&t).ok()) {
        req.headers_mut().insert(SHARE_HEADER, v);
    }
    req
}

/// Reading stats through the API: the admin token, an API key scoped to the site (rate
/// limited), or a public site. Wrong or missing credentials: 401; a key for other sites: 403.
pub fn require_stats(state: &AppState, headers: &HeaderMap, site: &SiteId) -> Result<(), ApiError> {
    if is_admin(state, headers) || session(state, headers).is_some() {
        return Ok(());
    }
    // A share link for another site grants nothing here; other credentials still may.
    if shared_site(state, headers).is_some_and(|s| &s == site) {
        return Ok(());
    }
    match bearer(headers) {
        Some(key) => match state.access.keys.check(key) {
            crate::keys::Check::Ok(info) if info.sites.contains(site) => Ok(()),
            crate::keys::Check::Ok(_) => Err(ApiError::Forbidden),
            crate::keys::Check::Limited => Err(ApiError::TooManyRequests),
            crate::keys::Check::Unknown => Err(ApiError::Unauthorized),
        },
        None if state.ingest.sites.is_public(site) => Ok(()),
        None => Err(ApiError::Unauthorized),
    }
}
