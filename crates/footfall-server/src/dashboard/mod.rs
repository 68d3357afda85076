//! The web dashboard's side of the server: its pages and files, logins, and the site
//! management it offers. The stats it shows come from the read routes like any client's.

pub mod account;
pub mod assets;
pub mod sites;

use crate::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tower_http::compression::CompressionLayer;

/// Page routes the dashboard's client-side router knows; each serves index.html.
const PAGES: &[&str] = &["/", "/login", "/setup", "/s/{*rest}", "/share/{*rest}"];

pub fn routes() -> Router<Arc<AppState>> {
    let mut files = Router::new()
        .route("/js/footfall.js", get(assets::tracker))
        .route("/assets/{*path}", get(assets::asset));
    for p in PAGES {
        files = files.route(p, get(assets::page));
    }
    Router::new()
        .merge(files.layer(CompressionLayer::new()))
        .route("/api/dashboard/state", get(account::state))
        .route("/api/dashboard/login", post(account::login))
        .route("/api/dashboard/logout", post(account::logout))
        .route("/api/dashboard/setup", post(account::setup))
        .route("/api/dashboard/sites", get(sites::list).post(sites::add))
        .route(
            "/api/dashboard/sites/{site}/share",
            post(sites::share).delete(sites::unshare),
        )
        .route("/api/dashboard/share/{token}", get(sites::resolve_share))
        .route("/api/dashboard/site/{site}", get(sites::one))
        .route("/api/stats/{site}/titles", get(sites::titles))
        .route("/api/admin/users", post(account::add_user))
}
