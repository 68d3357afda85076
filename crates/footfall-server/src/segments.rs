//! Saved segments over HTTP: each dashboard user's own and the shared ones, and their use in
//! queries. A segment is personal to the user who saved it unless shared; the admin token
//! sees and changes every one; API keys and share links use shared segments only.

use crate::auth::{self, Who};
use crate::error::ApiError;
use crate::http::blocking;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use footfall_core::decode::limits;
use footfall_core::segment::{Segment, SegmentSpec};
use footfall_core::SiteId;
use serde_json::{json, Value};
use std::sync::Arc;

fn visible(s: &Segment, who: &Who) -> bool {
    s.shared || may_change(s, who)
}

fn may_change(s: &Segment, who: &Who) -> bool {
    match who {
        Who::Admin => true,
        Who::User(u) => *u == s.owner,
        Who::Reader => false,
    }
}

fn shown(s: &Segment, who: &Who) -> Value {
    json!({"name": s.name, "filters": s.filters, "shared": s.shared, "owner": s.owner,
        "mine": may_change(s, who)})
}

/// `GET …/sites/{site}/segments` → `{"site", "segments": [...]}`: the requester's own and
/// the shared ones, oldest first.
pub async fn list(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_editor_read(&st, &headers)?;
    let site = crate::admin::known_site(&st, &site)?;
    let who = auth::who(&st, &headers);
    let (st2, site2) = (st.clone(), site.clone());
    let all =
        blocking(move || -> Result<_, ApiError> { Ok(st2.ingest.sites.segments(&site2)?) }).await?;
    let segments: Vec<Value> = all
        .iter()
        .filter(|s| visible(s, &who))
        .map(|s| shown(s, &who))
        .collect();
    Ok(Json(json!({ "site": site, "segments": segments })).into_response())
}

/// `POST …/sites/{site}/segments {"name", "filters": [v2 filters], "shared": bool}`: saved
/// as the requester's (201), or replacing their own of that name (200). A name another
/// user holds is a 409; filters a query would refuse are a 400 naming the rule.
pub async fn put(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    auth::require_editor(&st, &headers)?;
    let body = crate::http::read_body(body, limits::BODY_BYTES).await?;
    let spec: SegmentSpec = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid segment: {e}")))?;
    let site = crate::admin::known_site(&st, &site)?;
    let who = auth::who(&st, &headers);
    let owner = match &who {
        Who::User(u) => u.clone(),
        _ => String::new(),
    };
    let segment = Segment::new(spec, owner)?;
    let now = st.clock.now().0;
    let (st2, site2, seg2, who2) = (st.clone(), site.clone(), segment.clone(), who.clone());
    let (created, segment) = blocking(move || -> Result<(bool, Segment), ApiError> {
        Ok(st2
            .ingest
            .sites
            .put_segment(&site2, &seg2, &|old| may_change(old, &who2), now)?)
    })
    .await?;
    Ok((
        crate::admin::created_status(created),
        Json(json!({ "site": site, "segment": shown(&segment, &who), "created": created })),
    )
        .into_response())
}

/// `DELETE …/sites/{site}/segments/{name}`: the requester's own (or any, with the admin
/// token); 404 for one they can't see, 403 for a shared one of another user.
pub async fn delete(
    State(st): State<Arc<AppState>>,
    Path((site, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require_editor(&st, &headers)?;
    let site = crate::admin::known_site(&st, &site)?;
    let who = auth::who(&st, &headers);
    let name = name.trim().to_string();
    let (st2, site2, name2) = (st.clone(), site.clone(), name.clone());
    let found = blocking(move || -> Result<bool, ApiError> {
        Ok(st2
            .ingest
            .sites
            .delete_segment(&site2, &name2, &|s| visible(s, &who), &|s| {
                may_change(s, &who)
            })?)
    })
    .await?;
    if found {
        Ok(Json(json!({ "site": site, "name": name, "deleted": true })).into_response())
    } else {
        Err(ApiError::NotFound(format!("no segment {name:?} on {site}")))
    }
}

/// Puts the filters of the segments a v2 query names (`["is", "segment", [name]]`) in
/// their place, as the requester may use them; the store is read only if it names one.
pub async fn expand_in_query(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    site: &SiteId,
    query: &mut Value,
) -> Result<(), ApiError> {
    let names_one = query
        .get("filters")
        .is_some_and(|f| f.to_string().contains("\"segment\""));
    if !names_one {
        return Ok(());
    }
    let who = auth::who(st, headers);
    let (st2, site2) = (st.clone(), site.clone());
    let all =
        blocking(move || -> Result<_, ApiError> { Ok(st2.ingest.sites.segments(&site2)?) }).await?;
    footfall_core::segment::expand(query, &|name| {
        all.iter()
            .find(|s| s.name == name && visible(s, &who))
            .map(|s| s.filters.clone())
    })?;
    Ok(())
}
