//! `PUT /api/sites/{site}/content`: the site's content catalogue, replaced whole from the
//! API's JSON list (or a sitemap, an RSS or an Atom feed); `GET` reads it back. Open live
//! streams send a fresh snapshot at once.

use crate::error::ApiError;
use crate::http::blocking;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use footfall_core::catalogue::{self, CatalogueError};
use footfall_core::SiteId;
use serde_json::json;
use std::sync::Arc;

impl From<CatalogueError> for ApiError {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::TooLarge => ApiError::BodyTooLarge(catalogue::MAX_BYTES),
            e => ApiError::BadRequest(format!("catalogue: {e}")),
        }
    }
}

/// Replaces the catalogue (the admin token, or a key with `content:write` for the site): `{"site", "revision", "entries", "posts", "pages", "skipped"}`.
/// A document that does not read changes nothing.
pub async fn put(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Credentials before existence: an unknown caller learns nothing about which sites exist.
    let site = SiteId::parse(&site).map_err(|e| ApiError::BadRequest(format!("site: {e}")))?;
    crate::auth::require_scope(&st, &headers, &site, crate::keys::CONTENT_WRITE)?;
    let site = crate::admin::known_site(&st, site.as_str())?;
    let body = crate::http::read_body(body, catalogue::MAX_BYTES).await?;
    let host = site.to_string();
    let imported =
        blocking(move || catalogue::import(&body, &host).map_err(ApiError::from)).await?;
    let now = st.clock.now().0;
    let (st2, site2, entries) = (st.clone(), site.clone(), imported.entries.clone());
    let revision = blocking(move || -> Result<u64, ApiError> {
        Ok(st2.ingest.sites.set_catalogue(&site2, &entries, now)?)
    })
    .await?;
    let count = |k: &str| imported.entries.iter().filter(|e| e.kind == k).count();
    Ok(Json(json!({
        "site": site,
        "revision": revision,
        "entries": imported.entries.len(),
        "posts": count("post"),
        "pages": count("page"),
        "skipped": imported.skipped,
    }))
    .into_response())
}

/// `{"site", "revision", "entries": [...]}`, by path; for anyone who may read the site's stats.
pub async fn get(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let site = crate::read::stats::authorized_site(&st, &headers, &site)?;
    let cat = st.ingest.sites.catalogue(&site);
    Ok(
        Json(json!({"site": site, "revision": cat.revision, "entries": cat.entries()}))
            .into_response(),
    )
}
