//! The dashboard's server side over HTTP: first-user setup, login sessions, CSRF, share
//! links, site management, titles, the embedded web files, and hostile input on each.

mod common;

use common::*;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

struct Login {
    cookie: String,
    csrf: String,
}

async fn add_user(s: &TestServer, name: &str, pw: &str) -> reqwest::StatusCode {
    s.http
        .post(format!("{}/api/admin/users", s.base))
        .bearer_auth(TOKEN)
        .json(&json!({"username": name, "password": pw}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn login(
    s: &TestServer,
    name: &str,
    pw: &str,
) -> (u16, Option<Login>, reqwest::header::HeaderMap) {
    let r = s
        .http
        .post(format!("{}/api/dashboard/login", s.base))
        .json(&json!({"username": name, "password": pw}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let cookie = headers
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_string);
    let login = match (cookie, body["csrf"].as_str()) {
        (Some(cookie), Some(csrf)) => Some(Login {
            cookie,
            csrf: csrf.to_string(),
        }),
        _ => None,
    };
    (status, login, headers)
}

/// A bodiless change as a logged-in user, with the CSRF token.
async fn as_user(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    l: &Login,
) -> reqwest::Response {
    s.http
        .request(method, format!("{}{path}", s.base))
        .header(COOKIE, &l.cookie)
        .header("x-csrf-token", &l.csrf)
        .send()
        .await
        .unwrap()
}

/// Creates (or rotates) example.com's share link as a logged-in user; returns the token.
async fn new_share_link(s: &TestServer, l: &Login) -> String {
    let (status, v) = post_as(
        s,
        "/api/dashboard/sites/example.com/share",
        l,
        Some(&l.csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["share_token"].as_str().unwrap().to_string()
}

async fn get(s: &TestServer, path: &str, cookie: Option<&str>) -> (u16, Value) {
    let mut r = s.http.get(format!("{}{path}", s.base));
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_as(
    s: &TestServer,
    path: &str,
    l: &Login,
    csrf: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut r = s
        .http
        .post(format!("{}{path}", s.base))
        .header(COOKIE, &l.cookie)
        .json(&body);
    if let Some(t) = csrf {
        r = r.header("x-csrf-token", t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn login_sets_a_strict_httponly_cookie_and_logout_ends_the_session() {
    let s = TestServer::start().await;
    assert_eq!(add_user(&s, "ana", PASSWORD).await, 201);
    let (status, l, headers) = login(&s, "ana", PASSWORD).await;
    assert_eq!(status, 200);
    let set = headers
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(set.starts_with("ff_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing in {set}");
    }
    let l = l.unwrap();
    let (st, state) = get(&s, "/api/dashboard/state", Some(&l.cookie)).await;
    assert_eq!(st, 200);
    assert_eq!(state["user"], "ana");
    assert_eq!(state["csrf"], l.csrf.as_str());
    assert_eq!(state["setup_required"], false);

    // A logged-in user reads any site's stats and lists sites.
    assert_eq!(
        get(&s, "/api/stats/example.com/live", Some(&l.cookie))
            .await
            .0,
        200
    );
    let (st, sites) = get(&s, "/api/dashboard/sites", Some(&l.cookie)).await;
    assert_eq!(st, 200);
    assert!(sites
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["domain"] == "example.com"));
    let q = json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "day"});
    assert_eq!(
        post_as(&s, "/api/v2/query", &l, Some(&l.csrf), q).await.0,
        200
    );

    // Logging out needs the CSRF token; afterwards the cookie is worthless.
    assert_eq!(
        post_as(&s, "/api/dashboard/logout", &l, None, json!({}))
            .await
            .0,
        403
    );
    let r = as_user(&s, reqwest::Method::POST, "/api/dashboard/logout", &l).await;
    assert_eq!(r.status(), 204);
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        get(&s, "/api/dashboard/sites", Some(&l.cookie)).await.0,
        401
    );
    assert_eq!(
        get(&s, "/api/stats/example.com/live", Some(&l.cookie))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_401_and_guessing_is_braked_per_client() {
    let s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let (a, l1, _) = login(&s, "ana", "wrong password").await;
    let (b, l2, _) = login(&s, "nobody", "wrong password").await;
    assert_eq!((a, b), (401, 401));
    assert!(l1.is_none() && l2.is_none());
    for _ in 0..9 {
        login(&s, "ana", "still wrong").await;
    }
    // Ten failures from this client: even the right password is refused here for a while...
    assert_eq!(login(&s, "ana", PASSWORD).await.0, 429);
    // ...but not from elsewhere, so a guesser can't lock the owner out.
    let from = |ip: &'static str, name: &'static str, pw: &'static str| {
        let s = &s;
        async move {
            s.http
                .post(format!("{}/api/dashboard/login", s.base))
                .header("x-forwarded-for", ip)
                .json(&json!({"username": name, "password": pw}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(from("198.51.100.9", "ana", PASSWORD).await, 200);
    // One client trying many names is braked too (30 failures across names).
    for i in 0..30 {
        let name: &'static str = Box::leak(format!("user{i}").into_boxed_str());
        assert_eq!(from("203.0.113.5", name, "guess-guess").await, 401);
    }
    assert_eq!(from("203.0.113.5", "ana", PASSWORD).await, 429);
    s.advance(16 * MIN);
    assert_eq!(login(&s, "ana", PASSWORD).await.0, 200);
    assert_eq!(from("203.0.113.5", "ana", PASSWORD).await, 200);
}

#[tokio::test]
async fn sessions_survive_a_restart_and_expire() {
    let mut s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let l = login(&s, "ana", PASSWORD).await.1.unwrap();
    s.restart().await;
    assert_eq!(
        get(&s, "/api/dashboard/sites", Some(&l.cookie)).await.0,
        200
    );
    s.advance(31 * 24 * 60 * MIN);
    assert_eq!(
        get(&s, "/api/dashboard/sites", Some(&l.cookie)).await.0,
        401
    );
}

#[tokio::test]
async fn the_setup_token_creates_the_first_user_once() {
    let s = TestServer::start().await;
    let (_, state) = get(&s, "/api/dashboard/state", None).await;
    assert_eq!(state["setup_required"], true);
    assert_eq!(state["user"], Value::Null);
    let token = s
        .running()
        .state
        .access
        .accounts
        .setup_token()
        .expect("a setup token with no users");
    let setup = |t: String, pw: &'static str| {
        let s = &s;
        async move {
            s.http
                .post(format!("{}/api/dashboard/setup", s.base))
                .json(&json!({"token": t, "username": "owner", "password": pw}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(setup("0".repeat(32), PASSWORD).await.status(), 401);
    // A bad password doesn't burn the token.
    let r = setup(token.clone(), "short").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("password"));
    let r = setup(token.clone(), PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(SET_COOKIE).is_some());
    assert_eq!(setup(token, PASSWORD).await.status(), 401, "used once");
    let (_, state) = get(&s, "/api/dashboard/state", None).await;
    assert_eq!(state["setup_required"], false);
    assert_eq!(login(&s, "owner", PASSWORD).await.0, 200);
}

#[tokio::test]
async fn sites_are_added_from_the_dashboard_with_a_snippet_only_with_csrf() {
    let s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let l = login(&s, "ana", PASSWORD).await.1.unwrap();
    let body = json!({"domain": "New-Shop.example", "timezone": "Europe/Berlin"});
    assert_eq!(
        post_as(&s, "/api/dashboard/sites", &l, None, body.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        post_as(&s, "/api/dashboard/sites", &l, Some("wrong"), body.clone())
            .await
            .0,
        403
    );
    // A cross-site form can't send JSON: text/plain is refused even with the token.
    let r = s
        .http
        .post(format!("{}/api/dashboard/sites", s.base))
        .header(COOKIE, &l.cookie)
        .header("x-csrf-token", &l.csrf)
        .header(CONTENT_TYPE, "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!s
        .running()
        .state
        .ingest
        .sites
        .contains(&footfall_core::SiteId::parse("new-shop.example").unwrap()));

    let (st, v) = post_as(&s, "/api/dashboard/sites", &l, Some(&l.csrf), body).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["domain"], "new-shop.example");
    assert_eq!(v["timezone"], "Europe/Berlin");
    let snippet = v["snippet"].as_str().unwrap();
    assert!(
        snippet.contains(r#"data-domain="new-shop.example""#),
        "{snippet}"
    );
    assert!(snippet.contains("/js/footfall.js"), "{snippet}");
    // Events for it are accepted from now on.
    let (code, _) = s
        .post(
            "/api/event",
            json!({"n": "pageview", "u": "https://new-shop.example/", "d": "new-shop.example"}),
            "9.9.9.9",
        )
        .await;
    assert_eq!(code, 202);

    for (bad, why) in [
        (json!({"domain": "not a domain"}), "domain"),
        (
            json!({"domain": "x.example", "timezone": "Mars/Olympus"}),
            "time zone",
        ),
        (json!({"domain": "x.example", "extra": 1}), "unknown field"),
        (json!({"domain": "'; DROP TABLE sites; --"}), "domain"),
    ] {
        let (st, v) = post_as(&s, "/api/dashboard/sites", &l, Some(&l.csrf), bad).await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"].as_str().unwrap().to_lowercase().contains(why),
            "{v}"
        );
    }
}

#[tokio::test]
async fn share_links_open_one_site_read_only_and_can_be_rotated_or_disabled() {
    let s = TestServer::start_with(|c| {
        c.sites
            .push(footfall_core::SiteId::parse("other.example").unwrap());
    })
    .await;
    add_user(&s, "ana", PASSWORD).await;
    let l = login(&s, "ana", PASSWORD).await.1.unwrap();
    s.pageview("/shared", "1.2.3.4").await;
    let token = new_share_link(&s, &l).await;
    assert_eq!(token.len(), 32, "128 random bits");

    let (st, v) = get(&s, &format!("/api/dashboard/share/{token}"), None).await;
    assert_eq!((st, v["domain"].as_str()), (200, Some("example.com")));
    let (st, live) = get(
        &s,
        &format!("/api/stats/example.com/live?share={token}"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(live["totalPageViews"], 1);
    let q = json!({"site_id": "example.com", "metrics": ["pageviews"], "date_range": "day"});
    let r = s
        .http
        .post(format!("{}/api/v2/query?share={token}", s.base))
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["results"][0]["metrics"][0],
        1
    );
    // Only that site, and nothing a user can do.
    assert_eq!(
        get(
            &s,
            &format!("/api/stats/other.example/live?share={token}"),
            None
        )
        .await
        .0,
        401
    );
    let other = json!({"site_id": "other.example", "metrics": ["pageviews"], "date_range": "day"});
    let r = s
        .http
        .post(format!("{}/api/v2/query?share={token}", s.base))
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a share link grants nothing on another site"
    );
    assert_eq!(
        get(&s, &format!("/api/dashboard/sites?share={token}"), None)
            .await
            .0,
        401
    );
    let (_, site) = get(
        &s,
        &format!("/api/dashboard/site/example.com?share={token}"),
        None,
    )
    .await;
    assert_eq!(
        site["share_token"],
        Value::Null,
        "a share link doesn't reveal itself"
    );

    // Rotating kills the old link; deleting kills the new one.
    let token2 = new_share_link(&s, &l).await;
    assert_ne!(token, token2);
    assert_eq!(
        get(
            &s,
            &format!("/api/stats/example.com/live?share={token}"),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        get(
            &s,
            &format!("/api/stats/example.com/live?share={token2}"),
            None
        )
        .await
        .0,
        200
    );
    let r = as_user(
        &s,
        reqwest::Method::DELETE,
        "/api/dashboard/sites/example.com/share",
        &l,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        get(
            &s,
            &format!("/api/stats/example.com/live?share={token2}"),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        get(&s, &format!("/api/dashboard/share/{token2}"), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn share_links_outlive_a_restart() {
    let mut s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let l = login(&s, "ana", PASSWORD).await.1.unwrap();
    let token = new_share_link(&s, &l).await;
    s.restart().await;
    assert_eq!(
        get(
            &s,
            &format!("/api/stats/example.com/live?share={token}"),
            None
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn titles_come_from_page_views_and_are_bounded() {
    let s = TestServer::start().await;
    let (code, _) = s
        .post("/api/event", json!({"n": "pageview", "u": "https://example.com/a", "d": "example.com", "t": "Page A"}), "1.1.1.1")
        .await;
    assert_eq!(code, 202);
    let r = s
        .http
        .get(format!(
            "{}/api/stats/example.com/titles?path=/a&path=/none&path=%27%3B--",
            s.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"/a": "Page A"}));
    assert_eq!(
        get(&s, "/api/stats/example.com/titles?path=/a", None)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn hostile_login_and_setup_bodies_are_refused_cleanly() {
    let s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let huge = "x".repeat(100_000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{not json".to_vec()),
        ("application/json", vec![0xff, 0xfe, b'{', b'}']),
        (
            "application/json",
            format!(r#"{{"username":"ana","password":"{huge}"}}"#).into_bytes(),
        ),
        (
            "application/json",
            br#"{"username":["ana"],"password":1}"#.to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"username=ana&password=x".to_vec(),
        ),
        (
            "text/plain",
            format!(r#"{{"username":"ana","password":"{PASSWORD}"}}"#).into_bytes(),
        ),
    ];
    for (ct, body) in cases {
        for path in ["/api/dashboard/login", "/api/dashboard/setup"] {
            let r = s
                .http
                .post(format!("{}{path}", s.base))
                .header(CONTENT_TYPE, ct)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            assert!(st == 400 || st == 413, "{path} {ct}: {st}");
            assert!(r.headers().get(SET_COOKIE).is_none());
            let v: Value = r.json().await.unwrap();
            assert!(v["error"].is_string());
        }
    }
    for (name, pw) in [
        ("", PASSWORD),
        ("a b", PASSWORD),
        ("ok", "short"),
        (&*"n".repeat(65), PASSWORD),
    ] {
        assert_eq!(add_user(&s, name, pw).await, 400, "{name:?}");
    }
    // Cookies that aren't sessions are simply not logged in.
    for c in [
        "ff_session=",
        "ff_session=../../etc",
        "ff_session=\u{0}x",
        "other=1",
    ] {
        let r = s
            .http
            .get(format!("{}/api/dashboard/sites", s.base))
            .header(COOKIE, c)
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 401, "{c:?}");
        }
    }
    assert_eq!(
        login(&s, "ana", PASSWORD).await.0,
        200,
        "nothing above changed the user"
    );
}

#[tokio::test]
async fn the_dashboard_and_tracker_are_served_from_the_binary() {
    let s = TestServer::start().await;
    for page in ["/", "/login", "/setup", "/s/example.com", "/share/abc"] {
        let r = s
            .http
            .get(format!("{}{page}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{page}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(r.text().await.unwrap().contains("<html"), "{page}");
    }
    let r = s
        .http
        .get(format!("{}/js/footfall.js", s.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.unwrap();
    assert!(gz.len() <= 1536, "tracker is {} bytes gzipped", gz.len());
    for asset in ["/assets/map.js", "/assets/world.json"] {
        let r = s
            .http
            .get(format!("{}{asset}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    for bad in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/tracker/footfall.js",
        "/assets/nope.js",
        "/assets//etc/passwd",
    ] {
        let r = s.http.get(format!("{}{bad}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
}

#[tokio::test]
async fn a_new_password_ends_old_logins() {
    let s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let l = login(&s, "ana", PASSWORD).await.1.unwrap();
    assert_eq!(
        get(&s, "/api/dashboard/sites", Some(&l.cookie)).await.0,
        200
    );
    assert_eq!(add_user(&s, "ana", "a different password").await, 200);
    assert_eq!(
        get(&s, "/api/dashboard/sites", Some(&l.cookie)).await.0,
        401
    );
    assert_eq!(login(&s, "ana", PASSWORD).await.0, 401);
    assert_eq!(login(&s, "ana", "a different password").await.0, 200);
}

#[tokio::test]
async fn a_live_stream_ends_when_its_share_link_is_revoked() {
    let s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let l = login(&s, "ana", PASSWORD).await.1.unwrap();
    let token = new_share_link(&s, &l).await;
    let mut stream = s
        .http
        .get(format!(
            "{}/api/stats/example.com/live/stream?share={token}",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: stats"));
    let r = as_user(
        &s,
        reqwest::Method::DELETE,
        "/api/dashboard/sites/example.com/share",
        &l,
    )
    .await;
    assert_eq!(r.status(), 204);
    // The next change would be pushed to a reader; this one is no longer one.
    s.pageview("/after-revoke", "5.6.7.8").await;
    let rest = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut text = String::new();
        while let Ok(Some(c)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&c));
        }
        text
    })
    .await
    .expect("the stream ends");
    assert!(
        !rest.contains("/after-revoke"),
        "no update after the revoke: {rest}"
    );
}

#[tokio::test]
async fn api_answers_are_not_cached_and_the_page_has_one_address() {
    let s = TestServer::start().await;
    add_user(&s, "ana", PASSWORD).await;
    let (_, _, headers) = login(&s, "ana", PASSWORD).await;
    assert_eq!(headers["cache-control"], "private, no-store");
    let r = s
        .http
        .get(format!("{}/api/dashboard/state", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = s
        .http
        .get(format!("{}/api/stats/example.com/live", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    // index.html only comes with its security headers, from the page routes.
    let r = s
        .http
        .get(format!("{}/assets/index.html", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
