//! Goals through the admin API: added, replaced, listed, removed, kept across a restart;
//! hostile and malformed goals refused with a clear 4xx, changing nothing.

mod common;
use common::*;
use serde_json::{json, Value};

async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let mut r = s
        .http
        .request(method.parse().unwrap(), format!("{}{path}", s.base));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.body(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn post(s: &TestServer, site: &str, token: Option<&str>, body: String) -> (u16, Value) {
    let path = format!("/api/admin/sites/{site}/goals");
    call(s, "POST", &path, token, Some(body)).await
}

async fn goals(s: &TestServer) -> Value {
    let (status, body) = call(
        s,
        "GET",
        "/api/admin/sites/example.com/goals",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["goals"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_are_added_replaced_listed_and_removed() {
    let mut s = TestServer::start().await;
    let add = |body: Value| {
        let s = &s;
        async move {
            call(
                s,
                "POST",
                "/api/admin/sites/example.com/goals",
                Some(TOKEN),
                Some(body.to_string()),
            )
            .await
        }
    };
    assert_eq!(
        add(json!({"name": "Signup", "event": "Signup"})).await.0,
        201
    );
    assert_eq!(
        add(json!({"name": "Read the blog", "page": "/blog/**"}))
            .await
            .0,
        201
    );
    let (status, body) =
        add(json!({"name": "Deep read", "page": "/blog/*", "scroll_depth": 75})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["goal"],
        json!({"name": "Deep read", "page": "/blog/*", "scroll_depth": 75})
    );
    // The same name again replaces it, in its place.
    let (status, body) =
        add(json!({"name": "Signup", "event": "Signup", "props": {"plan": "pro"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], false);
    let want = json!([
        {"name": "Signup", "event": "Signup", "props": {"plan": "pro"}},
        {"name": "Read the blog", "page": "/blog/**"},
        {"name": "Deep read", "page": "/blog/*", "scroll_depth": 75},
    ]);
    assert_eq!(goals(&s).await, want);

    // Kept across a restart.
    s.restart().await;
    assert_eq!(goals(&s).await, want);

    // Removed by name (URL-encoded), once.
    let path = "/api/admin/sites/example.com/goals/Read%20the%20blog";
    assert_eq!(call(&s, "DELETE", path, Some(TOKEN), None).await.0, 200);
    assert_eq!(call(&s, "DELETE", path, Some(TOKEN), None).await.0, 404);
    assert_eq!(goals(&s).await.as_array().unwrap().len(), 2);

    // A name with a slash is removed by its encoded form.
    let (status, _) = post(
        &s,
        "example.com",
        Some(TOKEN),
        json!({"name": "a/b", "event": "x"}).to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let path = "/api/admin/sites/example.com/goals/a%2Fb";
    assert_eq!(call(&s, "DELETE", path, Some(TOKEN), None).await.0, 200);
    assert_eq!(goals(&s).await.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_goals_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let ok = json!({"name": "Signup", "event": "Signup"}).to_string();
    assert_eq!(
        post(&s, "example.com", Some(TOKEN), ok.clone()).await.0,
        201
    );
    let before = goals(&s).await;

    // No token, a wrong token: 401, and the goal list is not even readable.
    assert_eq!(post(&s, "example.com", None, ok.clone()).await.0, 401);
    assert_eq!(
        post(&s, "example.com", Some("nope"), ok.clone()).await.0,
        401
    );
    assert_eq!(
        call(&s, "GET", "/api/admin/sites/example.com/goals", None, None)
            .await
            .0,
        401
    );
    // An unknown or malformed site.
    assert_eq!(
        post(&s, "unknown.example", Some(TOKEN), ok.clone()).await.0,
        404
    );
    assert_eq!(post(&s, "not a site", Some(TOKEN), ok.clone()).await.0, 400);

    let long = "x".repeat(200);
    let deep = format!("/{}", "*a".repeat(1_500));
    for (body, says) in [
        ("{".to_string(), "invalid goal"),
        (json!({"name": "x"}).to_string(), "one of"),
        (
            json!({"name": "x", "page": "/", "event": "e"}).to_string(),
            "one of",
        ),
        (
            json!({"name": "x", "page": "blog"}).to_string(),
            "start with /",
        ),
        (json!({"name": "x", "page": "/a***"}).to_string(), "three *"),
        (json!({"name": "x", "page": deep}).to_string(), "at most"),
        (json!({"name": "", "event": "e"}).to_string(), "goal name"),
        (json!({"name": "..", "event": "e"}).to_string(), "goal name"),
        (
            json!({"name": "x", "page": "/café"}).to_string(),
            "percent-encoded",
        ),
        (
            json!({"name": "x", "page": "/a?b=1"}).to_string(),
            "percent-encoded",
        ),
        (json!({"name": long, "event": "e"}).to_string(), "goal name"),
        (
            json!({"name": "x", "event": "e\u{0}"}).to_string(),
            "event name",
        ),
        (
            json!({"name": "x", "page": "/", "scroll_depth": 0}).to_string(),
            "scroll depth",
        ),
        (
            json!({"name": "x", "page": "/", "scroll_depth": 1e9}).to_string(),
            "invalid goal",
        ),
        (
            json!({"name": "x", "event": "e", "props": {"": "v"}}).to_string(),
            "property",
        ),
        (
            json!({"name": "x", "event": "e", "color": "red"}).to_string(),
            "unknown field",
        ),
        (
            json!({"name": "Signup", "page": "/\n"}).to_string(),
            "start with /",
        ),
    ] {
        let (status, resp) = post(&s, "example.com", Some(TOKEN), body.clone()).await;
        assert_eq!(status, 400, "{body} → {resp}");
        assert!(
            resp["error"].as_str().unwrap().contains(says),
            "{body} → {resp}"
        );
    }
    // Too big a body.
    let huge = json!({"name": "x", "event": "e", "props": {"k": "v".repeat(200_000)}}).to_string();
    let (status, _) = post(&s, "example.com", Some(TOKEN), huge).await;
    assert!(status == 413 || status == 400, "{status}");
    assert_eq!(goals(&s).await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_has_at_most_so_many_goals() {
    let s = TestServer::start().await;
    let max = footfall_core::goal::MAX_GOALS;
    for i in 0..max {
        let body = json!({"name": format!("g{i}"), "event": format!("e{i}")}).to_string();
        let (status, resp) = call(
            &s,
            "POST",
            "/api/admin/sites/example.com/goals",
            Some(TOKEN),
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{resp}");
    }
    let one_more = json!({"name": "one more", "event": "e"}).to_string();
    let (status, resp) = call(
        &s,
        "POST",
        "/api/admin/sites/example.com/goals",
        Some(TOKEN),
        Some(one_more),
    )
    .await;
    assert_eq!(status, 409, "{resp}");
    // Replacing one is still allowed.
    let again = json!({"name": "g0", "page": "/"}).to_string();
    assert_eq!(
        call(
            &s,
            "POST",
            "/api/admin/sites/example.com/goals",
            Some(TOKEN),
            Some(again)
        )
        .await
        .0,
        200
    );
    assert_eq!(goals(&s).await.as_array().unwrap().len(), max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnels_are_saved_listed_queried_by_name_and_removed() {
    let mut s = TestServer::start().await;
    for g in [
        json!({"name": "Visit pricing", "page": "/pricing"}),
        json!({"name": "Signup", "event": "Signup"}),
    ] {
        assert_eq!(
            post(&s, "example.com", Some(TOKEN), g.to_string()).await.0,
            201
        );
    }
    // Two visitors: one views pricing then signs up, one only views pricing.
    for (sid, events) in [
        (
            "v1",
            &[("pageview", "/pricing"), ("Signup", "/pricing")][..],
        ),
        ("v2", &[("pageview", "/pricing")][..]),
    ] {
        for (n, page) in events {
            let r = s
                .http
                .post(format!("{}/api/event", s.base))
                .header("user-agent", CHROME)
                .body(json!({"n": n, "u": format!("https://example.com{page}"), "d": "example.com", "sid": sid}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    }
    let path = "/api/admin/sites/example.com/funnels";
    let put = |body: Value| {
        let s = &s;
        async move { call(s, "POST", path, Some(TOKEN), Some(body.to_string())).await }
    };
    let (status, body) =
        put(json!({"name": "Checkout", "steps": ["Visit pricing", "Signup"]})).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = put(json!({"name": "Checkout", "steps": ["Visit pricing", "Signup"]})).await;
    assert_eq!(status, 200, "the same name replaces");
    // Refused, changing nothing: a step that is no goal, one step, unknown fields, no token.
    for (bad, want) in [
        (
            json!({"name": "X", "steps": ["Visit pricing", "Sign up"]}),
            400,
        ),
        (json!({"name": "X", "steps": ["Signup"]}), 400),
        (
            json!({"name": "X", "steps": ["Signup", "Signup"], "x": 1}),
            400,
        ),
        (json!({"name": "", "steps": ["Signup", "Signup"]}), 400),
    ] {
        let (status, body) = put(bad.clone()).await;
        assert_eq!(status, want, "{bad} → {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    let (status, _) = call(
        &s,
        "POST",
        path,
        None,
        Some(json!({"name": "Y", "steps": ["Signup", "Signup"]}).to_string()),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &s,
        "POST",
        "/api/admin/sites/nope.example/funnels",
        Some(TOKEN),
        Some(json!({"name": "Y", "steps": ["Signup", "Signup"]}).to_string()),
    )
    .await;
    assert_eq!(status, 404);

    assert_eq!(
        listed(&s, path).await,
        json!([{"name": "Checkout", "steps": ["Visit pricing", "Signup"]}])
    );

    // Kept across a restart, and queried by name as by its steps.
    s.restart().await;
    assert_eq!(listed(&s, path).await.as_array().unwrap().len(), 1);
    let ask = |body: Value| {
        let s = &s;
        async move {
            call(
                s,
                "POST",
                "/api/v2/funnel",
                Some(TOKEN),
                Some(body.to_string()),
            )
            .await
        }
    };
    let (status, by_name) =
        ask(json!({"site_id": "example.com", "date_range": "day", "funnel": "Checkout"})).await;
    assert_eq!(status, 200, "{by_name}");
    let visitors: Vec<u64> = by_name["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["visitors"].as_u64().unwrap())
        .collect();
    assert_eq!(visitors, [2, 1], "{by_name}");
    let (_, by_steps) = ask(json!({"site_id": "example.com", "date_range": "day", "steps": ["Visit pricing", "Signup"]})).await;
    assert_eq!(by_name["steps"], by_steps["steps"]);
    let (status, _) =
        ask(json!({"site_id": "example.com", "date_range": "day", "funnel": "Nope"})).await;
    assert_eq!(status, 404);
    let (status, _) = ask(json!({"site_id": "example.com", "date_range": "day", "funnel": "Checkout", "steps": ["Signup", "Signup"]})).await;
    assert_eq!(status, 400, "steps or a name, not both");

    let (status, _) = call(&s, "DELETE", &format!("{path}/Checkout"), Some(TOKEN), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&s, "DELETE", &format!("{path}/Checkout"), Some(TOKEN), None).await;
    assert_eq!(status, 404);
    assert_eq!(listed(&s, path).await, json!([]));
}

async fn listed(s: &TestServer, path: &str) -> Value {
    call(s, "GET", path, Some(TOKEN), None).await.1["funnels"].clone()
}
