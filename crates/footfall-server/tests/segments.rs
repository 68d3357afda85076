//! Saved segments over HTTP: personal and shared ones, who sees and changes which, their
//! use in v2 queries and funnels (by users, keys and the admin token), and bad segments.

mod common;

use common::*;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

struct User {
    cookie: String,
    csrf: String,
}

async fn user(s: &TestServer, name: &str) -> User {
    let r = s
        .http
        .post(format!("{}/api/admin/users", s.base))
        .bearer_auth(TOKEN)
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    user_again(s, name).await
}

/// Credentials a request goes with.
enum As<'a> {
    User(&'a User),
    /// A user's session without the CSRF header (as a cross-site form would send it).
    Forged(&'a User),
    Bearer(&'a str),
    Nobody,
}

async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    who: As<'_>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s
        .http
        .request(method.parse().unwrap(), format!("{}{path}", s.base));
    match who {
        As::User(u) => r = r.header(COOKIE, &u.cookie).header("x-csrf-token", &u.csrf),
        As::Forged(u) => r = r.header(COOKIE, &u.cookie),
        As::Bearer(t) => r = r.bearer_auth(t),
        As::Nobody => {}
    }
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Visitors of a v2 query with `filters`, or the error status and message.
async fn visitors(
    s: &TestServer,
    who: As<'_>,
    metrics: Value,
    filters: Value,
) -> Result<Value, (u16, String)> {
    let q = json!({"site_id": "example.com", "date_range": "all", "metrics": metrics, "filters": filters});
    let (status, v) = call(s, "POST", "/api/v2/query", who, Some(q)).await;
    if status == 200 {
        Ok(v["results"][0]["metrics"].clone())
    } else {
        Err((status, v["error"].as_str().unwrap_or("").to_string()))
    }
}

const SEGMENTS: &str = "/api/dashboard/sites/example.com/segments";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_personal_or_shared_and_mean_their_filters() {
    let mut s = TestServer::start().await;
    // 1: Google → /pricing; 2: Google → /; 3: direct → /pricing.
    for (ip, referrer, path) in [
        ("9.0.0.1", Some("https://www.google.com/"), "/pricing"),
        ("9.0.0.2", Some("https://www.google.com/"), "/"),
        ("9.0.0.3", None, "/pricing"),
    ] {
        let mut body =
            json!({"n": "pageview", "u": format!("https://example.com{path}"), "d": "example.com"});
        if let Some(r) = referrer {
            body["r"] = json!(r);
        }
        let (status, v) = s.post("/api/event", body, ip).await;
        assert_eq!(
            (status, v["status"].as_str()),
            (202, Some("accepted")),
            "{v}"
        );
    }
    let (status, _) = call(
        &s,
        "POST",
        "/api/admin/sites/example.com/goals",
        As::Bearer(TOKEN),
        Some(json!({"name": "Pricing visit", "page": "/pricing"})),
    )
    .await;
    assert_eq!(status, 201);
    let ana = user(&s, "ana").await;
    let bob = user(&s, "bob").await;
    let (_, key) = call(
        &s,
        "POST",
        "/api/admin/keys",
        As::Bearer(TOKEN),
        Some(json!({"sites": ["example.com"]})),
    )
    .await;
    let key = key["key"].as_str().unwrap().to_string();

    let google = json!([["is", "visit:source", ["Google"]]]);
    for (name, filters, shared) in [
        ("Google", google.clone(), false),
        ("Pricing", json!([["is", "event:page", ["/pricing"]]]), true),
        (
            "Converted",
            json!([["is", "event:goal", ["Pricing visit"]]]),
            true,
        ),
    ] {
        let (status, v) = call(
            &s,
            "POST",
            SEGMENTS,
            As::User(&ana),
            Some(json!({"name": name, "filters": filters, "shared": shared})),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["segment"]["owner"], "ana");
    }

    // A segment means its filters: the same figures as the filters written out.
    let seg = |names: &[&str]| json!([["is", "segment", names]]);
    let m = json!(["visitors"]);
    assert_eq!(
        visitors(&s, As::User(&ana), m.clone(), seg(&["Google"])).await,
        Ok(json!([2]))
    );
    assert_eq!(
        visitors(&s, As::User(&ana), m.clone(), google.clone()).await,
        Ok(json!([2]))
    );
    // Two segment conditions: both hold. One condition naming two: either does.
    let both = json!([
        ["is", "segment", ["Google"]],
        ["is", "segment", ["Pricing"]]
    ]);
    assert_eq!(
        visitors(&s, As::User(&ana), m.clone(), both).await,
        Ok(json!([1]))
    );
    assert_eq!(
        visitors(&s, As::User(&ana), m.clone(), seg(&["Google", "Pricing"])).await,
        Ok(json!([3]))
    );
    assert_eq!(
        visitors(
            &s,
            As::User(&ana),
            m.clone(),
            json!([["not", ["is", "segment", ["Google"]]]])
        )
        .await,
        Ok(json!([1]))
    );
    // A goal in a segment stays a top-level goal filter: conversion rates work.
    assert_eq!(
        visitors(
            &s,
            As::User(&ana),
            json!(["visitors", "conversion_rate"]),
            seg(&["Converted"])
        )
        .await,
        Ok(json!([2, 66.67]))
    );

    // Who may use which: Google is ana's own; Pricing is shared.
    let unknown = |r: Result<Value, (u16, String)>| matches!(r, Err((400, e)) if e.contains("unknown segment \"Google\""));
    assert!(unknown(
        visitors(&s, As::User(&bob), m.clone(), seg(&["Google"])).await
    ));
    assert!(unknown(
        visitors(&s, As::Bearer(&key), m.clone(), seg(&["Google"])).await
    ));
    assert_eq!(
        visitors(&s, As::User(&bob), m.clone(), seg(&["Pricing"])).await,
        Ok(json!([2]))
    );
    assert_eq!(
        visitors(&s, As::Bearer(&key), m.clone(), seg(&["Pricing"])).await,
        Ok(json!([2]))
    );
    assert_eq!(
        visitors(&s, As::Bearer(TOKEN), m.clone(), seg(&["Google"])).await,
        Ok(json!([2]))
    );
    // Batches and funnels take segments too.
    let q = json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors"], "filters": seg(&["Google"])});
    let (status, v) = call(
        &s,
        "POST",
        "/api/v2/query/batch",
        As::User(&ana),
        Some(json!({"queries": [q]})),
    )
    .await;
    assert_eq!(
        (status, &v["results"][0]["body"]["results"][0]["metrics"]),
        (200, &json!([2])),
        "{v}"
    );
    let (status, v) = call(&s, "POST", "/api/v2/funnel", As::User(&bob), Some(json!({"site_id": "example.com",
        "date_range": "all", "steps": ["Pricing visit", "Pricing visit"], "filters": seg(&["Pricing"])}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["steps"][0]["visitors"], 2);

    // Listing: each sees their own and the shared ones.
    let names = |v: &Value| -> Vec<(String, bool)> {
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["mine"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let (_, v) = call(&s, "GET", SEGMENTS, As::User(&ana), None).await;
    assert_eq!(
        names(&v),
        [
            ("Google".into(), true),
            ("Pricing".into(), true),
            ("Converted".into(), true)
        ]
    );
    let (_, v) = call(&s, "GET", SEGMENTS, As::User(&bob), None).await;
    assert_eq!(
        names(&v),
        [("Pricing".into(), false), ("Converted".into(), false)]
    );
    assert_eq!(call(&s, "GET", SEGMENTS, As::Nobody, None).await.0, 401);
    assert_eq!(
        call(&s, "GET", SEGMENTS, As::Bearer(&key), None).await.0,
        401
    );

    // Changing: only the owner (or the admin token); a name is one site-wide.
    let (status, e) = call(
        &s,
        "POST",
        SEGMENTS,
        As::User(&bob),
        Some(json!({"name": "Google", "filters": google})),
    )
    .await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(
        call(
            &s,
            "DELETE",
            &format!("{SEGMENTS}/Pricing"),
            As::User(&bob),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &s,
            "DELETE",
            &format!("{SEGMENTS}/Google"),
            As::User(&bob),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &s,
            "DELETE",
            &format!("{SEGMENTS}/Google"),
            As::Forged(&ana),
            None
        )
        .await
        .0,
        403
    );
    let (status, v) = call(
        &s,
        "POST",
        SEGMENTS,
        As::User(&ana),
        Some(json!({"name": "Pricing", "filters": [["is", "event:page", ["/"]]], "shared": true})),
    )
    .await;
    assert_eq!((status, v["created"].as_bool()), (200, Some(false)), "{v}");
    assert_eq!(
        visitors(&s, As::User(&bob), m.clone(), seg(&["Pricing"])).await,
        Ok(json!([1]))
    );
    // The admin token may edit anyone's segment; it stays its owner's.
    let (status, v) = call(
        &s,
        "POST",
        "/api/admin/sites/example.com/segments",
        As::Bearer(TOKEN),
        Some(json!({"name": "Google", "filters": google.clone()})),
    )
    .await;
    assert_eq!(
        (status, v["segment"]["owner"].as_str()),
        (200, Some("ana")),
        "{v}"
    );

    // Bad segments: a clear 400, nothing saved.
    for (body, needle) in [
        (
            json!({"name": "x", "filters": [["is", "visit:nope", ["y"]]]}),
            "unknown dimension",
        ),
        (
            json!({"name": "x", "filters": [["is", "segment", ["Pricing"]]]}),
            "another segment",
        ),
        (json!({"name": "x", "filters": []}), "non-empty list"),
        (
            json!({"name": "", "filters": google.clone()}),
            "segment name",
        ),
        (
            json!({"name": "x", "filters": google.clone(), "owner": "bob"}),
            "unknown field",
        ),
        (
            json!({"name": "x", "filters": [["matches", "event:page", ["(("]]]}),
            "filters",
        ),
    ] {
        let (status, e) = call(&s, "POST", SEGMENTS, As::User(&ana), Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {e}");
        assert!(
            e["error"].as_str().unwrap_or("").contains(needle),
            "{body} → {e}"
        );
    }
    let bad_use = [
        (json!([["is_not", "segment", ["Pricing"]]]), "filters[0]"),
        (json!([["is", "segment", []]]), "segment names"),
    ];
    for (filters, needle) in bad_use {
        let r = visitors(&s, As::User(&ana), m.clone(), filters.clone()).await;
        assert!(
            matches!(&r, Err((400, e)) if e.contains(needle)),
            "{filters} → {r:?}"
        );
    }

    // Kept across a restart; deleted by the owner.
    s.restart().await;
    let ana = user_again(&s, "ana").await;
    let (_, v) = call(&s, "GET", SEGMENTS, As::User(&ana), None).await;
    assert_eq!(names(&v).len(), 3);
    assert_eq!(
        call(
            &s,
            "DELETE",
            &format!("{SEGMENTS}/Google"),
            As::User(&ana),
            None
        )
        .await
        .0,
        200
    );
    assert!(unknown(
        visitors(&s, As::User(&ana), m.clone(), seg(&["Google"])).await
    ));
    s.stop().await;
}

/// Logs an existing user in again (after a restart).
async fn user_again(s: &TestServer, name: &str) -> User {
    let r = s
        .http
        .post(format!("{}/api/dashboard/login", s.base))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = r.json().await.unwrap();
    User {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_string(),
    }
}
