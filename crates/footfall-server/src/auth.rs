//! Who may read and administer. Until dashboard logins exist, the admin token reads every
//! site and anyone may read a site marked public.

use crate::app::AppState;
use crate::error::ApiError;
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

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
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

/// Reading a site's stats: the admin token, or the site is public.
pub fn require_read(state: &AppState, headers: &HeaderMap, site: &SiteId) -> Result<(), ApiError> {
    if is_admin(state, headers) || state.sites.is_public(site) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Reading stats through the API: the admin token, an API key scoped to the site (rate
/// limited), or a public site. Wrong or missing credentials: 401; a key for other sites: 403.
pub fn require_stats(state: &AppState, headers: &HeaderMap, site: &SiteId) -> Result<(), ApiError> {
    if is_admin(state, headers) {
        return Ok(());
    }
    match bearer(headers) {
        Some(key) => match state.keys.check(key) {
            crate::keys::Check::Ok(info) if info.sites.contains(site) => Ok(()),
            crate::keys::Check::Ok(_) => Err(ApiError::Forbidden),
            crate::keys::Check::Limited => Err(ApiError::TooManyRequests),
            crate::keys::Check::Unknown => Err(ApiError::Unauthorized),
        },
        None if state.sites.is_public(site) => Ok(()),
        None => Err(ApiError::Unauthorized),
    }
}
