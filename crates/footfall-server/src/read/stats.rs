//! `GET /api/stats/{site}/live`: the seed's getStats, read from counters kept on write —
//! O(1) in stored events.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use footfall_core::live::LiveStats;
use footfall_core::SiteId;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct LiveParams {
    /// Cap on `pageStats` rows (default: all paths).
    pub limit: Option<usize>,
}

pub fn authorized_site(st: &AppState, headers: &HeaderMap, raw: &str) -> Result<SiteId, ApiError> {
    let site = SiteId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    crate::auth::require_read(st, headers, &site)?;
    if !st.ingest.sites.contains(&site) {
        return Err(ApiError::NotFound(format!("site {site} is not registered")));
    }
    Ok(site)
}

pub async fn live(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    Query(p): Query<LiveParams>,
    headers: HeaderMap,
) -> Result<Json<LiveStats>, ApiError> {
    let site = authorized_site(&st, &headers, &site)?;
    Ok(Json(snapshot(&st, &site, p.limit)))
}

/// The live stats with the site's content catalogue applied.
pub fn snapshot(st: &AppState, site: &SiteId, limit: Option<usize>) -> LiveStats {
    let mut snap = st.read.live.snapshot(site, st.clock.as_ref(), limit);
    st.ingest.sites.catalogue(site).apply(&mut snap, limit);
    snap
}
