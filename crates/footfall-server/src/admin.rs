//! Admin routes, authorised by the admin token.

use crate::app::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use footfall_core::decode::limits;
use footfall_core::SiteId;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddSite {
    domain: String,
    #[serde(default)]
    public: bool,
}

/// `POST /api/admin/sites {"domain": "example.com", "public": false}`
pub async fn add_site(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    crate::auth::require_admin(&st, &headers)?;
    let body = crate::ingest::read_body(body, limits::BODY_BYTES).await?;
    let req: AddSite = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid site: {e}")))?;
    let site = SiteId::parse(&req.domain).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let now = st.clock.now().0;
    let st2 = st.clone();
    let site2 = site.clone();
    let created = tokio::task::spawn_blocking(move || st2.sites.add(&site2, req.public, now))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "domain": site, "public": req.public, "created": created })),
    )
        .into_response())
}

/// `GET /api/admin/sites`
pub async fn list_sites(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::require_admin(&st, &headers)?;
    let sites: Vec<_> = st
        .sites
        .list()
        .into_iter()
        .map(|(d, p)| json!({ "domain": d, "public": p }))
        .collect();
    Ok(Json(json!({ "sites": sites })).into_response())
}
