//! Admin routes, authorised by the admin token.

use crate::error::ApiError;
use crate::http::blocking;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use footfall_core::decode::limits;
use footfall_core::SiteId;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Every admin write: the admin token, a bounded body, JSON into `T`.
async fn admin_json<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, ApiError> {
    crate::auth::require_admin(st, headers)?;
    let body = crate::http::read_body(body, limits::BODY_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid {what}: {e}")))
}

/// A site setting's JSON body, from the admin token or a signed-in user's change.
async fn editor_json<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, ApiError> {
    crate::auth::require_editor(st, headers)?;
    let body = crate::http::read_body(body, limits::BODY_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid {what}: {e}")))
}

/// 201 for something new, 200 for an update of what was there.
pub(crate) fn created_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddSite {
    domain: String,
    /// Absent: unchanged for an existing site, false for a new one.
    public: Option<bool>,
    timezone: Option<String>,
    /// The id OpenPanel's SDKs send for this site; "" removes it, absent keeps it.
    openpanel_client_id: Option<String>,
}

/// `POST /api/admin/sites {"domain": "example.com", "public": false}`
pub async fn add_site(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: AddSite = admin_json(&st, &headers, body, "site").await?;
    let site = SiteId::parse(&req.domain).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let tz = req
        .timezone
        .as_deref()
        .map(crate::pipeline::sites::parse_timezone)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let now = st.clock.now().0;
    let st2 = st.clone();
    let site2 = site.clone();
    let public = req
        .public
        .unwrap_or_else(|| st.ingest.sites.is_public(&site));
    let client_id = req.openpanel_client_id;
    let created = blocking(move || -> Result<bool, ApiError> {
        Ok(st2
            .ingest
            .sites
            .add_with_client_id(&site2, public, tz, now, client_id.as_deref())?)
    })
    .await?;
    let client_id = st
        .ingest
        .sites
        .info(&site)
        .and_then(|i| i.openpanel_client_id);
    Ok((
        created_status(created),
        Json(json!({ "domain": site, "public": public, "created": created, "openpanel_client_id": client_id.as_deref() })),
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
        .ingest
        .sites
        .list()
        .into_iter()
        .map(|(d, i)| json!({ "domain": d, "public": i.public, "timezone": i.timezone.name(), "openpanel_client_id": i.openpanel_client_id.as_deref() }))
        .collect();
    Ok(Json(json!({ "sites": sites })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    sites: Vec<String>,
    /// Besides reading: `content:write`.
    #[serde(default)]
    scopes: Vec<String>,
}

/// `POST /api/admin/keys {"sites": ["example.com"]}` → `{"id": "...", "key": "ff_..."}`; the
/// key is shown this once.
pub async fn create_key(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: CreateKey = admin_json(&st, &headers, body, "key request").await?;
    if req.sites.is_empty() {
        return Err(ApiError::BadRequest("sites: at least one site".into()));
    }
    let mut sites = Vec::new();
    for s in &req.sites {
        let site = SiteId::parse(s).map_err(|e| ApiError::BadRequest(format!("sites: {e}")))?;
        if !st.ingest.sites.contains(&site) {
            return Err(ApiError::BadRequest(format!(
                "sites: {site} is not registered"
            )));
        }
        sites.push(site);
    }
    if let Some(bad) = req
        .scopes
        .iter()
        .find(|s| !crate::keys::SCOPES.contains(&s.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "scopes: unknown scope {bad:?}; known: {}",
            crate::keys::SCOPES.join(", ")
        )));
    }
    let now = st.clock.now().0;
    let (st2, scopes) = (st.clone(), req.scopes.clone());
    let (id, key) = blocking(move || st2.access.keys.create(&sites, &scopes, now)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "key": key, "sites": req.sites, "scopes": req.scopes })),
    )
        .into_response())
}

/// `DELETE /api/admin/keys/{id}`
pub async fn revoke_key(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::require_admin(&st, &headers)?;
    let now = st.clock.now().0;
    let st2 = st.clone();
    let id2 = id.clone();
    let found = blocking(move || st2.access.keys.revoke(&id2, now)).await?;
    if found {
        Ok((StatusCode::OK, Json(json!({ "id": id, "revoked": true }))).into_response())
    } else {
        Err(ApiError::NotFound(format!("no active key {id}")))
    }
}

/// The site named in a route's path, which must be registered.
pub(crate) fn known_site(st: &AppState, raw: &str) -> Result<SiteId, ApiError> {
    let site = SiteId::parse(raw).map_err(|e| ApiError::BadRequest(format!("site: {e}")))?;
    if !st.ingest.sites.contains(&site) {
        return Err(ApiError::NotFound(format!("no site {site}")));
    }
    Ok(site)
}

/// `POST /api/admin/sites/{site}/goals {"name": "Signup", "event": "Signup"}` (or
/// `{"name", "page"}`, `{"name", "page", "scroll_depth"}`, an event goal with `"props"`).
/// A goal of the same name is replaced (200); a new one is 201.
pub async fn put_goal(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let spec: footfall_core::goal::GoalSpec = editor_json(&st, &headers, body, "goal").await?;
    let site = known_site(&st, &site)?;
    let goal = footfall_core::goal::Goal::from_spec(spec)?;
    let now = st.clock.now().0;
    let (st2, site2, goal2) = (st.clone(), site.clone(), goal.clone());
    let created = blocking(move || -> Result<bool, ApiError> {
        Ok(st2.ingest.sites.put_goal(&site2, goal2, now)?)
    })
    .await?;
    Ok((
        created_status(created),
        Json(json!({ "site": site, "goal": goal, "created": created })),
    )
        .into_response())
}

/// `GET /api/admin/sites/{site}/goals` → `{"goals": [...]}`, oldest first.
pub async fn list_goals(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::require_editor_read(&st, &headers)?;
    let site = known_site(&st, &site)?;
    let goals = st.ingest.sites.goals(&site);
    Ok(Json(json!({ "site": site, "goals": &*goals })).into_response())
}

/// `DELETE /api/admin/sites/{site}/goals/{name}`
pub async fn delete_goal(
    State(st): State<Arc<AppState>>,
    Path((site, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::require_editor(&st, &headers)?;
    let site = known_site(&st, &site)?;
    // Names are stored trimmed.
    let name = name.trim().to_string();
    let (st2, site2, name2) = (st.clone(), site.clone(), name.clone());
    let found = blocking(move || -> Result<bool, ApiError> {
        Ok(st2.ingest.sites.delete_goal(&site2, &name2)?)
    })
    .await?;
    if found {
        Ok(Json(json!({ "site": site, "name": name, "deleted": true })).into_response())
    } else {
        Err(ApiError::NotFound(format!("no goal {name:?} on {site}")))
    }
}

/// `POST /api/admin/sites/{site}/funnels {"name": "Checkout", "steps": ["Visit pricing",
/// "Signup"]}`: a saved funnel, 2–8 of the site's goals in order. Replaces the site's
/// funnel of that name (200); a new one is 201.
pub async fn put_funnel(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let spec: footfall_core::goal::FunnelSpec = editor_json(&st, &headers, body, "funnel").await?;
    let site = known_site(&st, &site)?;
    let funnel = footfall_core::goal::Funnel::try_from(spec)?;
    let now = st.clock.now().0;
    let (st2, site2, funnel2) = (st.clone(), site.clone(), funnel.clone());
    let created = blocking(move || -> Result<bool, ApiError> {
        Ok(st2.ingest.sites.put_funnel(&site2, funnel2, now)?)
    })
    .await?;
    Ok((
        created_status(created),
        Json(json!({ "site": site, "funnel": funnel, "created": created })),
    )
        .into_response())
}

/// `GET /api/admin/sites/{site}/funnels` → `{"funnels": [...]}`, oldest first.
pub async fn list_funnels(
    State(st): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::require_editor_read(&st, &headers)?;
    let site = known_site(&st, &site)?;
    let (st2, site2) = (st.clone(), site.clone());
    let funnels =
        blocking(move || -> Result<_, ApiError> { Ok(st2.ingest.sites.funnels(&site2)?) }).await?;
    Ok(Json(json!({ "site": site, "funnels": funnels })).into_response())
}

/// `DELETE /api/admin/sites/{site}/funnels/{name}`
pub async fn delete_funnel(
    State(st): State<Arc<AppState>>,
    Path((site, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::require_editor(&st, &headers)?;
    let site = known_site(&st, &site)?;
    let name = name.trim().to_string();
    let (st2, site2, name2) = (st.clone(), site.clone(), name.clone());
    let found = blocking(move || -> Result<bool, ApiError> {
        Ok(st2.ingest.sites.delete_funnel(&site2, &name2)?)
    })
    .await?;
    if found {
        Ok(Json(json!({ "site": site, "name": name, "deleted": true })).into_response())
    } else {
        Err(ApiError::NotFound(format!("no funnel {name:?} on {site}")))
    }
}
