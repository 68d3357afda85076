//! The Stats API's edges: keys (scope, revocation, rate limit), validation errors over HTTP,
//! hostile filter values, and v1 agreeing with v2 on the same data.

mod common;
use common::*;
use serde_json::{json, Value};

async fn seed_data(s: &TestServer) {
    for (i, path) in ["/", "/blog", "/blog/a", "/pricing", "/blog"]
        .iter()
        .enumerate()
    {
        let ip = format!("7.7.7.{i}");
        s.post("/api/event", json!({"n":"pageview","u":format!("https://example.com{path}"),"d":"example.com","r":"https://www.google.com/"}), &ip).await;
        s.advance(20_000);
        s.pageview("/docs", &ip).await;
    }
}

async fn v2(s: &TestServer, auth: Option<&str>, body: Value) -> (u16, Value) {
    post(s, "/api/v2/query", auth, body).await
}

async fn post(s: &TestServer, path: &str, auth: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = s
        .http
        .post(format!("{}{path}", s.base))
        .body(body.to_string());
    if let Some(a) = auth {
        r = r.bearer_auth(a);
    }
    let resp = r.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn create_key(s: &TestServer, sites: Value) -> (u16, Value) {
    let r = s
        .http
        .post(format!("{}/api/admin/keys", s.base))
        .bearer_auth(TOKEN)
        .body(json!({ "sites": sites }).to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_scoped_revocable_and_rate_limited() {
    let s = TestServer::start_with(|c| c.api_rate_limit_per_hour = 5).await;
    seed_data(&s).await;
    let q = json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors"]});
    let (status, body) = create_key(&s, json!(["example.com"])).await;
    assert_eq!(status, 201);
    let key = body["key"].as_str().unwrap().to_string();
    let id = body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("ff_") && key.len() == 43);

    assert_eq!(v2(&s, None, q.clone()).await.0, 401);
    assert_eq!(
        v2(
            &s,
            Some("ff_0000000000000000000000000000000000000000"),
            q.clone()
        )
        .await
        .0,
        401
    );
    let (status, body) = v2(&s, Some(&key), q.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["metrics"][0], 5);

    let (_, other) = create_key(&s, json!(["public.example"])).await;
    let other = other["key"].as_str().unwrap().to_string();
    assert_eq!(
        v2(&s, Some(&other), q.clone()).await.0,
        403,
        "a key for another site"
    );
    assert_eq!(create_key(&s, json!(["nope.example"])).await.0, 400);
    assert_eq!(create_key(&s, json!([])).await.0, 400);

    // 5 per hour: one used above, four more pass, the sixth is refused.
    for _ in 0..4 {
        assert_eq!(v2(&s, Some(&key), q.clone()).await.0, 200);
    }
    let (status, body) = v2(&s, Some(&key), q.clone()).await;
    assert_eq!(status, 429);
    assert!(body["error"].as_str().unwrap().contains("budget"));
    assert_eq!(
        v2(&s, Some(TOKEN), q.clone()).await.0,
        200,
        "the admin token is not rate limited"
    );

    let del = s
        .http
        .delete(format!("{}/api/admin/keys/{id}", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert_eq!(v2(&s, Some(&key), q.clone()).await.0, 401, "revoked");
    let del = s
        .http
        .delete(format!("{}/api/admin/keys/{id}", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);

    // Keys are stored hashed only.
    let mut s = s;
    s.stop().await;
    let bytes = std::fs::read(s.dir.path().join("footfall.duckdb")).unwrap();
    let wal = std::fs::read(s.dir.path().join("footfall.duckdb.wal")).unwrap_or_default();
    let secret = key.as_bytes();
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret)
            && !wal.windows(secret.len()).any(|w| w == secret)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_queries_get_400_naming_the_field() {
    let s = TestServer::start().await;
    let cases = [
        (
            json!({"date_range": "7d", "metrics": ["visitors"]}),
            "site_id",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["nope"]}),
            "metrics",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["bounce_rate"], "dimensions": ["event:page"]}),
            "metrics",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["time_on_page"]}),
            "metrics",
        ),
        (
            json!({"site_id": "example.com", "date_range": "someday", "metrics": ["visitors"]}),
            "date_range",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["visitors"], "filters": [["matches", "event:page", ["(unclosed"]]]}),
            "filters[0][2][0]",
        ),
        (
            json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors"], "dimensions": ["time:hour"], "date": "2026-03-10"}),
            "",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = v2(&s, Some(TOKEN), body.clone()).await;
        if field.is_empty() {
            assert_eq!(status, 200, "{body}: {resp}");
            continue;
        }
        assert_eq!(status, 400, "{body}: {resp}");
        assert!(
            resp["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{resp}"
        );
    }
    let r = s
        .http
        .post(format!("{}/api/v2/query", s.base))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = v2(
        &s,
        Some(TOKEN),
        json!({"site_id": "unknown.example", "date_range": "7d", "metrics": ["visitors"]}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, resp) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": ["2000-01-01", "2026-01-01"], "metrics": ["visitors"], "dimensions": ["time:hour"]})).await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("time buckets"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_filter_values_match_nothing_and_break_nothing() {
    let s = TestServer::start().await;
    seed_data(&s).await;
    for value in [
        "'; DROP TABLE events; --",
        "\" OR \"1\"=\"1",
        "%",
        "_",
        "\\",
        "/blog' OR '1'='1",
        "\u{0}",
    ] {
        for op in ["is", "contains", "is_not"] {
            let (status, resp) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": "day", "metrics": ["pageviews"], "filters": [[op, "event:page", [value]]]})).await;
            assert_eq!(status, 200, "{op} {value:?}: {resp}");
            let n = resp["results"][0]["metrics"][0].as_i64().unwrap();
            assert_eq!(n, if op == "is_not" { 10 } else { 0 }, "{op} {value:?}");
        }
    }
    // A catastrophic-backtracking pattern for backtracking engines is linear in RE2.
    let (status, resp) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": "day", "metrics": ["pageviews"], "filters": [["matches", "event:page", ["^(a+)+$"]]]})).await;
    assert_eq!(
        (status, resp["results"][0]["metrics"][0].as_i64()),
        (200, Some(0))
    );
    let (status, resp) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": "day", "metrics": ["pageviews"], "filters": [["matches", "event:page", ["^/BLOG"], {"case_sensitive": false}]]})).await;
    assert_eq!(
        (status, resp["results"][0]["metrics"][0].as_i64()),
        (200, Some(3))
    );
    assert_eq!(
        s.stats().await["totalPageViews"],
        10,
        "the events table is intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_routes_agree_with_v2() {
    let s = TestServer::start().await;
    seed_data(&s).await;
    let get = |path: String| {
        let (http, base) = (s.http.clone(), s.base.clone());
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (_, agg) = get("/api/v1/stats/aggregate?site_id=example.com&period=day&metrics=visitors,pageviews,bounce_rate,visit_duration".into()).await;
    let (_, v2agg) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors", "pageviews", "bounce_rate", "visit_duration"]})).await;
    for (i, m) in ["visitors", "pageviews", "bounce_rate", "visit_duration"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            agg["results"][m]["value"], v2agg["results"][0]["metrics"][i],
            "{m}"
        );
    }
    assert_eq!(agg["results"]["visitors"]["value"], 5);

    let (_, bd) = get("/api/v1/stats/breakdown?site_id=example.com&period=day&property=event:page&metrics=visitors&filters=event:page%3D%3D/blog/**".into()).await;
    assert_eq!(
        bd["results"],
        json!([{"page": "/blog/a", "visitors": 1}]),
        "** matches below /blog/ only"
    );
    let (_, bd) = get("/api/v1/stats/breakdown?site_id=example.com&period=day&property=visit:source&limit=1&page=1".into()).await;
    assert_eq!(bd["results"], json!([{"source": "Google", "visitors": 5}]));
    let (_, bd) = get(
        "/api/v1/stats/breakdown?site_id=example.com&period=day&property=event:page&limit=2&page=2"
            .into(),
    )
    .await;
    assert_eq!(
        bd["results"].as_array().unwrap().len(),
        2,
        "second page of 5 pages"
    );

    let (_, ts) =
        get("/api/v1/stats/timeseries?site_id=example.com&period=7d&metrics=pageviews".into())
            .await;
    let rows = ts["results"].as_array().unwrap();
    assert_eq!(rows.len(), 7, "every day, zeros included");
    assert_eq!(
        rows.iter()
            .map(|r| r["pageviews"].as_i64().unwrap())
            .sum::<i64>(),
        10
    );

    let (_, rt) = get("/api/v1/stats/realtime/visitors?site_id=example.com".into()).await;
    assert_eq!(rt, json!(5));
    let (status, err) = get("/api/v1/stats/breakdown?site_id=example.com&period=day".into()).await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().starts_with("property:"));
    let (status, _) =
        get("/api/v1/stats/aggregate?site_id=example.com&filters=visit:nope%3D%3Dx".into()).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparison_and_pagination() {
    let s = TestServer::start().await;
    seed_data(&s).await;
    s.advance(86_400_000);
    seed_data(&s).await;
    s.pageview("/extra", "7.7.7.99").await;
    let (status, resp) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors", "pageviews"], "include": {"compare": "previous_period"}})).await;
    assert_eq!(status, 200, "{resp}");
    let row = &resp["results"][0];
    assert_eq!(row["metrics"], json!([6, 11]));
    assert_eq!(row["comparison"]["metrics"], json!([5, 10]));
    assert_eq!(row["comparison"]["change"], json!([20, 10]));
    let (_, resp) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": "day", "metrics": ["pageviews"], "dimensions": ["event:page"], "order_by": [["event:page", "asc"]], "pagination": {"limit": 2, "offset": 1}, "include": {"total_rows": true}})).await;
    assert_eq!(resp["meta"]["total_rows"], 6);
    let pages: Vec<&str> = resp["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dimensions"][0].as_str().unwrap())
        .collect();
    assert_eq!(pages, vec!["/blog", "/blog/a"]);
    let (_, resp) = v2(&s, Some(TOKEN), json!({"site_id": "example.com", "date_range": "day", "metrics": ["pageviews"], "dimensions": ["time:hour"], "include": {"time_labels": true}})).await;
    assert_eq!(resp["meta"]["time_labels"].as_array().unwrap().len(), 24);
    assert!(resp["meta"].get("comparison_results").is_none());

    // A series with a comparison and time labels carries the other period whole: what the
    // same query over the comparison range answers on its own.
    let series = json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors", "pageviews"],
                        "dimensions": ["time:hour"], "include": {"time_labels": true, "compare": "previous_period"}});
    let (status, resp) = v2(&s, Some(TOKEN), series.clone()).await;
    assert_eq!(status, 200, "{resp}");
    let range = resp["query"]["comparison_date_range"].clone();
    let day = range[0].as_str().unwrap()[..10].to_string();
    assert!(range[1].as_str().unwrap().starts_with(&day), "{range}");
    let mut alone = series.clone();
    alone["date_range"] = json!([day, day]);
    alone["include"] = json!({"time_labels": true});
    let (_, prev) = v2(&s, Some(TOKEN), alone).await;
    assert_eq!(resp["meta"]["comparison_results"], prev["results"]);
    assert_eq!(
        resp["meta"]["comparison_time_labels"],
        prev["meta"]["time_labels"]
    );
    assert!(!prev["results"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_inclusive_datetime_range_is_echoed_as_given() {
    let s = TestServer::start().await;
    let (code, v) = v2(
        &s,
        Some(TOKEN),
        json!({"site_id": "example.com", "metrics": ["visitors"],
               "date_range": ["2026-03-10T00:00:00Z", "2026-03-10T23:59:59Z"]}),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["query"]["date_range"],
        json!(["2026-03-10T00:00:00+00:00", "2026-03-10T23:59:59+00:00"])
    );
}

async fn batch(s: &TestServer, auth: Option<&str>, body: Value) -> (u16, Value) {
    post(s, "/api/v2/query/batch", auth, body).await
}

/// A batch answers each query as `/api/v2/query` does, in order; a bad or forbidden query
/// gets its own error without failing the others; the batch itself is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_query_as_alone() {
    let s = TestServer::start().await;
    seed_data(&s).await;
    let queries = vec![
        json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors", "pageviews"],
               "include": {"compare": "previous_period"}}),
        json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors", "percentage"],
               "dimensions": ["event:page"]}),
        json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors"],
               "dimensions": ["time:hour"], "include": {"time_labels": true}}),
        json!({"site_id": "example.com", "date_range": "day", "metrics": ["no_such_metric"]}),
        json!({"site_id": "unknown.example", "date_range": "day", "metrics": ["visitors"]}),
    ];
    let (status, body) = batch(&s, Some(TOKEN), json!({ "queries": queries })).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), queries.len());
    for (q, r) in queries.iter().zip(results) {
        let (alone_status, alone) = v2(&s, Some(TOKEN), q.clone()).await;
        assert_eq!(r["status"], json!(alone_status), "{q}");
        assert_eq!(r["body"], alone, "{q}");
    }
    assert_eq!(results[0]["status"], 200);
    assert!(results[1]["body"]["results"].as_array().unwrap().len() >= 4);
    assert_eq!(results[3]["status"], 400);
    assert!(results[3]["body"]["error"]
        .as_str()
        .unwrap()
        .contains("metrics"));
    assert_eq!(results[4]["status"], 404);

    // Credentials are checked per query: without any, each query is refused on its own.
    let (status, body) = batch(&s, None, json!({ "queries": [queries[0]] })).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["status"], 401);

    // Hostile shapes: not a list, empty, too many, not JSON.
    for bad in [
        json!({}),
        json!({"queries": {}}),
        json!({"queries": []}),
        json!({ "queries": vec![queries[0].clone(); 33] }),
    ] {
        let (status, body) = batch(&s, Some(TOKEN), bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"].as_str().unwrap().contains("queries"),
            "{body}"
        );
    }
    let r = s
        .http
        .post(format!("{}/api/v2/query/batch", s.base))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
