//! Sites as the dashboard manages them: list, add (with the snippet to paste), share links,
//! and the page titles the panels show next to paths.

use super::account::json_body;
use crate::auth;
use crate::error::ApiError;
use crate::http::blocking;
use crate::pipeline::sites::{parse_timezone, SiteInfo};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use footfall_core::SiteId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Most paths one titles request may ask about.
const MAX_TITLE_PATHS: usize = 100;

fn site_json(site: &SiteId, info: &SiteInfo, with_share: bool) -> Value {
    json!({
        "domain": site,
        "timezone": info.timezone.name(),
        "public": info.public,
        "share_token": if with_share { info.share_token.as_deref() } else { None },
    })
}

fn parse_site(raw: &str) -> Result<SiteId, ApiError> {
    SiteId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn known(st: &AppState, site: &SiteId) -> Result<SiteInfo, ApiError> {
    st.ingest
        .sites
        .info(site)
        .ok_or_else(|| ApiError::NotFound(format!("site {site} is not registered")))
}

/// Where this server is reachable, for the snippet: from the request's Host (and the
/// proxy's X-Forwarded-Proto), if it looks like a host name.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("stats.example.com");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

pub fn snippet(headers: &HeaderMap, site: &SiteId) -> String {
    format!(
        r#"<script defer data-domain="{site}" src="{}/js/footfall.js"></script>"#,
        origin(headers)
    )
}

/// `GET /api/dashboard/sites` (logged in)
pub async fn list(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::session(&st, &headers).ok_or(ApiError::Unauthorized)?;
    Ok(Json(Value::Array(
        st.ingest
            .sites
            .list()
            .iter()
            .map(|(s, i)| site_json(s, i, true))
            .collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    domain: String,
    timezone: Option<String>,
}

/// `POST /api/dashboard/sites` (logged in, CSRF): registers a site and returns the snippet.
pub async fn add(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    auth::require_user_change(&st, &headers)?;
    let req: NewSite = json_body(&headers, body).await?;
    let site = parse_site(&req.domain)?;
    let tz = req
        .timezone
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(parse_timezone)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let public = st.ingest.sites.is_public(&site);
    let now = st.clock.now().0;
    let (st2, site2) = (st.clone(), site.clone());
    let created = blocking(move || st2.ingest.sites.add(&site2, public, tz, now)).await?;
    let info = known(&st, &site)?;
    let mut v = site_json(&site, &info, true);
    v["snippet"] = Value::String(snippet(&headers, &site));
    v["created"] = Value::Bool(created);
    Ok((crate::admin::created_status(created), Json(v)).into_response())
}

/// `POST /api/dashboard/sites/{site}/share` (logged in, CSRF): a new share link; any old
/// one stops working.
pub async fn share(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::require_user_change(&st, &headers)?;
    let site = parse_site(&site)?;
    known(&st, &site)?;
    let token = crate::accounts::random_token();
    let (st2, site2, t2) = (st.clone(), site.clone(), token.clone());
    blocking(move || st2.ingest.sites.set_share_token(&site2, Some(&t2))).await?;
    Ok(Json(json!({ "share_token": token })))
}

/// `DELETE /api/dashboard/sites/{site}/share` (logged in, CSRF): disables the link.
pub async fn unshare(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    auth::require_user_change(&st, &headers)?;
    let site = parse_site(&site)?;
    known(&st, &site)?;
    let st2 = st.clone();
    blocking(move || st2.ingest.sites.set_share_token(&site, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/dashboard/share/{token}`: which site a share link opens.
pub async fn resolve_share(
    State(st): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = st
        .ingest
        .sites
        .by_share_token(&token)
        .ok_or_else(|| ApiError::NotFound("this share link is not valid (any more)".into()))?;
    let info = known(&st, &site)?;
    Ok(Json(
        json!({ "domain": site, "timezone": info.timezone.name() }),
    ))
}

/// `GET /api/dashboard/site/{site}`: one site's settings, for whoever may read it.
pub async fn one(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let site = parse_site(&site)?;
    auth::require_read(&st, &headers, &site)?;
    let info = known(&st, &site)?;
    let owner = auth::session(&st, &headers).is_some() || auth::is_admin(&st, &headers);
    Ok(Json(site_json(&site, &info, owner)))
}

/// `GET /api/stats/{site}/titles?path=/a&path=/b`: latest page titles, from memory.
pub async fn titles(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<Value>, ApiError> {
    let site = crate::read::stats::authorized_site(&st, &headers, &site)?;
    let paths: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "path")
        .map(|(_, v)| v.into_owned())
        .take(MAX_TITLE_PATHS)
        .collect();
    let map: serde_json::Map<String, Value> = st
        .read
        .live
        .titles(&site, &mut paths.iter().map(String::as_str))
        .into_iter()
        .map(|(p, t)| (p, Value::String(t)))
        .collect();
    Ok(Json(Value::Object(map)))
}
