//! The web files — tracker and dashboard — embedded in the binary at compile time, or read
//! from a folder when `--web-dir` is given (for working on them without rebuilding).

use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::sync::Arc;

#[derive(rust_embed::Embed)]
#[folder = "../../web/"]
struct Web;

/// A web file by its path under `web/`, from the override folder or the binary.
fn load(st: &AppState, path: &str) -> Option<Cow<'static, [u8]>> {
    // Only plain relative names: no `..`, no absolute paths, no backslashes.
    let safe = !path.is_empty()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'));
    if !safe {
        return None;
    }
    match &st.config.web_dir {
        Some(dir) => std::fs::read(dir.join(path)).ok().map(Cow::Owned),
        None => Web::get(path).map(|f| f.data),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn file(st: &AppState, path: &str, cache: &'static str) -> Response {
    match load(st, path) {
        Some(body) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            (headers, body.into_owned()).into_response()
        }
        None => crate::error::ApiError::NotFound(format!("no file {path}")).into_response(),
    }
}

/// `GET /js/footfall.js`: the tracker. Cached for an hour and usable from any origin.
pub async fn tracker(State(st): State<Arc<AppState>>) -> Response {
    let mut r = file(&st, "tracker/footfall.js", "public, max-age=3600");
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// `GET /assets/{file}`: dashboard modules, styles and data.
pub async fn asset(State(st): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    // The page itself is served only by `page`, with its security headers.
    if path.ends_with(".html") {
        return crate::error::ApiError::NotFound(format!("no file {path}")).into_response();
    }
    file(&st, &format!("dashboard/{path}"), "no-cache")
}

/// The dashboard's page for every client-side route (`/`, `/login`, `/s/{site}`, ...). The
/// policy keeps scripts to our own files and the page out of other sites' frames.
pub async fn page(State(st): State<Arc<AppState>>) -> Response {
    let mut r = file(&st, "dashboard/index.html", "no-cache");
    if r.status() == StatusCode::OK {
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::Web;

    /// The page preloads every dashboard module, so the browser fetches them all at once
    /// instead of discovering the imports one level at a time.
    #[test]
    fn the_page_preloads_every_module() {
        let page = Web::get("dashboard/index.html").expect("index.html is embedded");
        let page = std::str::from_utf8(&page.data).expect("utf-8");
        let modules: Vec<String> = Web::iter()
            .filter_map(|p| {
                p.strip_prefix("dashboard/")
                    .filter(|f| f.ends_with(".js") && *f != "theme-init.js")
                    .map(str::to_string)
            })
            .collect();
        assert!(modules.len() > 20, "the dashboard's modules: {modules:?}");
        for m in modules {
            let link = format!(r#"<link rel="modulepreload" href="/assets/{m}">"#);
            assert!(page.contains(&link), "index.html does not preload {m}");
        }
    }
}
