//! The binary as a user runs it: offline site registry, serve configured by environment,
//! SIGTERM drains, rebuild prints the counters.

mod common;
use common::{run, serve, BIN, UA};
use std::process::{Command, Stdio};

#[test]
fn sites_serve_sigterm_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert_eq!(
        run(
            &["sites", "add", "Example.com", "--timezone", "Europe/Berlin"],
            data
        )
        .trim(),
        "added example.com"
    );
    let key = run(&["keys", "create", "--site", "example.com"], data)
        .trim()
        .to_string();
    assert!(key.starts_with("ff_"), "{key}");
    let listed = run(&["keys", "list"], data);
    assert!(
        listed.contains("example.com\tactive") && !listed.contains(&key),
        "ids only: {listed}"
    );
    let bad_tz = Command::new(BIN)
        .args(["sites", "add", "x.example", "--timezone", "Mars/Base"])
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!bad_tz.status.success());
    assert_eq!(run(&["sites", "list"], data).trim(), "example.com");
    let bad = Command::new(BIN)
        .args(["sites", "add", "not a domain"])
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // An OpenPanel client id: listed, unique across sites, removable.
    assert_eq!(
        run(
            &[
                "sites",
                "add",
                "example.com",
                "--openpanel-client-id",
                "op-1"
            ],
            data
        )
        .trim(),
        "updated example.com"
    );
    run(&["sites", "add", "other.example"], data);
    let taken = Command::new(BIN)
        .args([
            "sites",
            "add",
            "other.example",
            "--openpanel-client-id",
            "op-1",
        ])
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already names site example.com"));
    assert_eq!(
        run(&["sites", "list"], data).trim(),
        "example.com (OpenPanel client id op-1)\nother.example"
    );
    run(
        &["sites", "add", "example.com", "--openpanel-client-id", ""],
        data,
    );
    assert_eq!(
        run(&["sites", "list"], data).trim(),
        "example.com\nother.example"
    );

    let (child, base) = serve(data, &[("FOOTFALL_ADMIN_TOKEN", "tok")]);

    let http = reqwest::blocking::Client::new();
    assert_eq!(
        http.get(format!("{base}/healthz")).send().unwrap().status(),
        200
    );
    for (i, path) in ["/a", "/b", "/a"].iter().enumerate() {
        let r = http
            .post(format!("{base}/api/event"))
            .header("user-agent", UA)
            .header("x-forwarded-for", format!("1.1.1.{i}"))
            .body(format!(
                r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com"}}"#
            ))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let stats: serde_json::Value = http
        .get(format!("{base}/api/stats/example.com/live"))
        .bearer_auth("tok")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["totalPageViews"], 3);
    let q: serde_json::Value = http
        .post(format!("{base}/api/v2/query"))
        .bearer_auth(&key)
        .body(r#"{"site_id":"example.com","date_range":"day","metrics":["pageviews"]}"#)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        q["results"][0]["metrics"][0], 3,
        "the CLI-made key reads the site"
    );
    assert_eq!(q["query"]["timezone"], "Europe/Berlin");

    common::term(child);

    let out = run(&["rebuild", "--chunk", "1"], data);
    assert_eq!(
        out.trim(),
        "example.com: page views 3, unique visitors 3, visits 3, bounces 3, paths 2"
    );
}

#[test]
fn users_are_added_offline_and_log_in_to_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // The password comes from standard input, so it is in neither argv nor shell history.
    let mut add = Command::new(BIN)
        .args(["users", "add", "--username", "ana"])
        .env("FOOTFALL_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(add.stdin.as_mut().unwrap(), b"correct horse battery\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("added user ana"));
    assert_eq!(run(&["users", "list"], data).trim(), "ana");
    for bad in [
        vec![
            "users",
            "add",
            "--username",
            "a b",
            "--password",
            "long enough",
        ],
        vec!["users", "add", "--username", "bob", "--password", "short"],
        vec!["users", "remove", "nobody"],
    ] {
        let out = Command::new(BIN)
            .args(&bad)
            .env("FOOTFALL_DATA_DIR", data)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
    // The password is stored as an argon2id hash, never as given.
    let db = std::fs::read(data.join("footfall.duckdb")).unwrap();
    let needle = b"correct horse battery";
    assert!(!db.windows(needle.len()).any(|w| w == needle));

    let (mut child, base) = serve(data, &[]);
    let http = reqwest::blocking::Client::new();
    let state: serde_json::Value = http
        .get(format!("{base}/api/dashboard/state"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["setup_required"], false, "a user exists: no setup");
    let r = http
        .post(format!("{base}/api/dashboard/login"))
        .json(&serde_json::json!({"username": "ana", "password": "correct horse battery"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_some());
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        run(&["users", "remove", "ana"], data).trim(),
        "removed user ana"
    );
    assert_eq!(run(&["users", "list"], data).trim(), "");
}

/// Goals offline: added, replaced, listed, removed; bad ones refused with the reason and
/// nothing stored; the server started afterwards lists what the CLI added.
#[test]
fn goals_are_managed_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    run(&["sites", "add", "example.com"], data);
    let add = |args: &[&str]| {
        let mut all = vec!["goals", "add", "--site", "example.com"];
        all.extend_from_slice(args);
        Command::new(BIN)
            .args(&all)
            .env("FOOTFALL_DATA_DIR", data)
            .output()
            .unwrap()
    };
    let out = add(&[
        "--name", "Signup", "--event", "Signup", "--prop", "plan=pro",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "added goal \"Signup\" on example.com"
    );
    assert!(add(&["--name", "Blog", "--page", "/blog/**"])
        .status
        .success());
    let out = add(&[
        "--name",
        "Blog",
        "--page",
        "/blog/*",
        "--scroll-depth",
        "50",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "replaced goal \"Blog\" on example.com"
    );
    for (args, says) in [
        (vec!["--name", "x", "--page", "blog"], "start with /"),
        (
            vec!["--name", "x", "--event", "e", "--prop", "novalue"],
            "key=value",
        ),
        (
            vec!["--name", "x", "--page", "/", "--scroll-depth", "101"],
            "scroll depth",
        ),
        (vec!["--name", "x"], "one of"),
    ] {
        let out = add(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let unknown = Command::new(BIN)
        .args(["goals", "list", "--site", "other.example"])
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let listed = run(&["goals", "list", "--site", "example.com"], data);
    assert_eq!(
        listed.trim(),
        "{\"name\":\"Signup\",\"event\":\"Signup\",\"props\":{\"plan\":\"pro\"}}\n{\"name\":\"Blog\",\"page\":\"/blog/*\",\"scroll_depth\":50}"
    );
    assert_eq!(
        run(
            &[
                "goals",
                "remove",
                "--site",
                "example.com",
                "--name",
                "Signup"
            ],
            data
        )
        .trim(),
        "removed goal \"Signup\" from example.com"
    );
    let again = Command::new(BIN)
        .args([
            "goals",
            "remove",
            "--site",
            "example.com",
            "--name",
            "Signup",
        ])
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!again.status.success());

    // The server reads them.
    let (mut server, base) = serve(data, &[("FOOTFALL_ADMIN_TOKEN", "T")]);
    let listed: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/admin/sites/example.com/goals"))
        .bearer_auth("T")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        listed["goals"],
        serde_json::json!([{"name": "Blog", "page": "/blog/*", "scroll_depth": 50}])
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn funnels_are_managed_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    run(&["sites", "add", "example.com"], data);
    run(
        &[
            "goals",
            "add",
            "--site",
            "example.com",
            "--name",
            "Pricing",
            "--page",
            "/pricing",
        ],
        data,
    );
    run(
        &[
            "goals",
            "add",
            "--site",
            "example.com",
            "--name",
            "Signup",
            "--event",
            "Signup",
        ],
        data,
    );
    let funnels = |args: &[&str]| {
        let mut all = vec!["funnels"];
        all.extend_from_slice(args);
        Command::new(BIN)
            .args(&all)
            .env("FOOTFALL_DATA_DIR", data)
            .output()
            .unwrap()
    };
    let add = ["add", "--site", "example.com", "--name", "Checkout"];
    let out = funnels(&[&add[..], &["--step", "Pricing", "--step", "Signup"]].concat());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "added funnel \"Checkout\" on example.com"
    );
    // Refused, changing nothing: a step that is no goal, one step.
    for (steps, says) in [
        (
            &["--step", "Pricing", "--step", "Sign up"][..],
            "not one of",
        ),
        (&["--step", "Pricing"][..], "2 to 8 steps"),
    ] {
        let out = funnels(&[&add[..], steps].concat());
        assert!(!out.status.success(), "{steps:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{steps:?}: {err}");
    }
    assert_eq!(
        run(&["funnels", "list", "--site", "example.com"], data).trim(),
        r#"{"name":"Checkout","steps":["Pricing","Signup"]}"#
    );
    assert_eq!(
        run(
            &[
                "funnels",
                "remove",
                "--site",
                "example.com",
                "--name",
                "Checkout"
            ],
            data
        )
        .trim(),
        "removed funnel \"Checkout\" from example.com"
    );
    assert!(
        !funnels(&["remove", "--site", "example.com", "--name", "Checkout"])
            .status
            .success()
    );
    assert_eq!(
        run(&["funnels", "list", "--site", "example.com"], data).trim(),
        ""
    );
}

/// `footfall content import` reads a feed or a sitemap into the catalogue; a hostile file
/// is refused and changes nothing; a key may be given the scope to set it online.
#[test]
fn content_is_imported_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    run(&["sites", "add", "example.com"], data);
    let feed = data.join("feed.xml");
    std::fs::write(
        &feed,
        r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>
<item><title>Hello &amp; welcome</title><link>https://example.com/blog/hello</link></item>
<item><title>Elsewhere</title><link>https://other.org/x</link></item>
</channel></rss>"#,
    )
    .unwrap();
    let out = run(
        &[
            "content",
            "import",
            "--site",
            "example.com",
            feed.to_str().unwrap(),
        ],
        data,
    );
    assert!(
        out.contains("1 entries (1 posts, 0 pages), 1 left out; revision 1"),
        "{out}"
    );
    let list = run(&["content", "list", "--site", "example.com"], data);
    let entry: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(
        entry,
        serde_json::json!({"path": "/blog/hello", "title": "Hello & welcome", "type": "post", "published": true})
    );
    let bomb = data.join("bomb.xml");
    std::fs::write(
        &bomb,
        r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><urlset><url><loc>https://example.com/&b;</loc></url></urlset>"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "content",
            "import",
            "--site",
            "example.com",
            bomb.to_str().unwrap(),
        ])
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DTD"));
    assert_eq!(
        run(&["content", "list", "--site", "example.com"], data),
        list
    );
    // A key that may set the catalogue; an unknown scope is refused.
    run(
        &[
            "keys",
            "create",
            "--site",
            "example.com",
            "--scope",
            "content:write",
        ],
        data,
    );
    let out = Command::new(BIN)
        .args([
            "keys",
            "create",
            "--site",
            "example.com",
            "--scope",
            "everything",
        ])
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
