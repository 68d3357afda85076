//! The cluster's metadata store (PostgreSQL) behaves as the embedded one: the same
//! operations, in the same order, give the same answers from both. And what nodes may race
//! on is settled in the database: concurrent salt rotations agree on one salt.
//!
//! Needs a PostgreSQL server: `FOOTFALL_TEST_POSTGRES=postgres://footfall@127.0.0.1:15432/postgres`
//! (scripts/test starts one). Without it these tests fail.

use footfall_core::SiteId;
use footfall_store::{DuckStore, MetadataStore, PgStore, SessionRecord};

fn server() -> String {
    std::env::var("FOOTFALL_TEST_POSTGRES").expect(
        "FOOTFALL_TEST_POSTGRES must name a PostgreSQL server (scripts/test starts one; see scripts/services)",
    )
}

/// A database of its own per test, dropped at the end.
struct TestDb {
    admin: postgres::Client,
    name: String,
}

impl TestDb {
    fn new(tag: &str) -> TestDb {
        let mut admin = postgres::Client::connect(&server(), postgres::NoTls)
            .expect("connect to FOOTFALL_TEST_POSTGRES");
        let name = format!("footfall_test_{tag}_{}", std::process::id());
        // Separate calls: several statements in one go run as one transaction, where
        // DROP/CREATE DATABASE are not allowed.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TestDb { admin, name }
    }

    fn url(&self) -> String {
        let base = server();
        let at = base.rfind('/').unwrap();
        format!("{}/{}", &base[..at], self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn site(s: &str) -> SiteId {
    SiteId::parse(s).unwrap()
}

fn goal(json: &str) -> footfall_core::goal::Goal {
    footfall_core::goal::Goal::from_spec(serde_json::from_str(json).unwrap()).unwrap()
}

/// Applies one step to a store and describes everything it then holds.
fn step(store: &dyn MetadataStore, i: usize) -> String {
    let now = 1_700_000_000_000 + i as i64;
    let result = match i {
        0 => format!("{:?}", store.add_site(&site("a.com"), false, now)),
        1 => format!("{:?}", store.add_site(&site("b.com"), true, now)),
        2 => format!("{:?}", store.add_site(&site("a.com"), true, now)),
        3 => format!(
            "{:?}",
            store.set_site_timezone(&site("a.com"), "Europe/Berlin")
        ),
        4 => format!(
            "{:?}",
            store.set_share_token(&site("b.com"), Some("tok'en"))
        ),
        5 => format!(
            "{:?}",
            store.set_openpanel_client_id(&site("a.com"), Some("op-1"))
        ),
        6 => format!("{:?}", store.rotate_salts(20_000, "s0")),
        7 => format!(
            "{:?}",
            store.rotate_salts(20_000, "ignored: today's exists")
        ),
        8 => format!("{:?}", store.rotate_salts(20_001, "s1")),
        9 => format!("{:?}", store.rotate_salts(20_003, "s3")),
        10 => format!(
            "{:?}",
            store.create_api_key(
                "k1",
                "h1",
                &[site("a.com"), site("b.com")],
                &["content:write".to_string()],
                now
            )
        ),
        11 => format!("{:?}", store.create_api_key("k2", "h2", &[], &[], now)),
        12 => format!("{:?}", store.revoke_api_key("k1", now)),
        13 => format!("{:?}", store.revoke_api_key("k1", now)),
        14 => format!("{:?}", store.put_user("ann", "hash1", now)),
        15 => format!("{:?}", store.put_user("ann", "hash2", now)),
        16 => format!("{:?}", store.put_user("bob", "hash3", now)),
        17 => format!(
            "{:?}",
            store.put_session(
                &SessionRecord {
                    token_hash: "t1".into(),
                    username: "ann".into(),
                    csrf: "c1".into(),
                    expires_at: now + 10,
                },
                now
            )
        ),
        18 => format!(
            "{:?}",
            store.put_session(
                &SessionRecord {
                    token_hash: "t2".into(),
                    username: "bob".into(),
                    csrf: "c2".into(),
                    expires_at: now - 1,
                },
                now
            )
        ),
        19 => format!("{:?}", store.live_sessions(now)),
        20 => format!("{:?}", store.delete_session("t1")),
        21 => format!("{:?}", store.delete_user("bob")),
        22 => format!("{:?}", store.delete_user("bob")),
        23 => format!("{:?}", store.set_share_token(&site("b.com"), None)),
        24 => format!("{:?}", store.set_openpanel_client_id(&site("a.com"), None)),
        25 => format!(
            "{:?}",
            store.put_goal(
                &site("a.com"),
                &goal(r#"{"name": "Signup", "event": "Signup", "props": {"plan": "pro"}}"#),
                now
            )
        ),
        26 => format!(
            "{:?}",
            store.put_goal(
                &site("a.com"),
                &goal(r#"{"name": "Blog", "page": "/blog/**"}"#),
                now
            )
        ),
        27 => format!(
            "{:?}",
            store.put_goal(
                &site("b.com"),
                &goal(r#"{"name": "Read", "page": "/post/*", "scroll_depth": 75}"#),
                now
            )
        ),
        // Same name: replaced, keeps its place.
        28 => format!(
            "{:?}",
            store.put_goal(
                &site("a.com"),
                &goal(r#"{"name": "Signup", "event": "Sign up"}"#),
                now
            )
        ),
        29 => format!("{:?}", store.delete_goal(&site("a.com"), "Blog")),
        30 => format!("{:?}", store.delete_goal(&site("a.com"), "Blog")),
        31 => format!(
            "{:?}",
            store.put_funnel(
                &site("a.com"),
                &funnel("Checkout", &["Blog", "Signup"]),
                now
            )
        ),
        32 => format!(
            "{:?}",
            store.put_funnel(
                &site("a.com"),
                &funnel("Read", &["Blog", "Read", "Blog"]),
                now
            )
        ),
        // Same name: replaced, keeps its place.
        33 => format!(
            "{:?}",
            store.put_funnel(
                &site("a.com"),
                &funnel("Checkout", &["Signup", "Blog"]),
                now
            )
        ),
        34 => format!("{:?}", store.delete_funnel(&site("a.com"), "Read")),
        35 => format!("{:?}", store.delete_funnel(&site("a.com"), "Read")),
        36 => format!(
            "{:?}",
            store.put_funnel(&site("b.com"), &funnel("Other", &["A", "B"]), now)
        ),
        37 => format!(
            "{:?}",
            store.put_segment(&site("a.com"), &segment("Mobile", "ana", false), now)
        ),
        38 => format!(
            "{:?}",
            store.put_segment(&site("a.com"), &segment("Google", "bob", true), now)
        ),
        // Same name: replaced, keeps its place.
        39 => format!(
            "{:?}",
            store.put_segment(&site("a.com"), &segment("Mobile", "ana", true), now)
        ),
        40 => format!("{:?}", store.delete_segment(&site("a.com"), "Google")),
        41 => format!("{:?}", store.delete_segment(&site("a.com"), "Google")),
        // Another owner's name: nothing changes (None).
        42 => format!(
            "{:?}",
            store.put_segment(&site("a.com"), &segment("Mobile", "bob", false), now)
        ),
        _ => unreachable!(),
    };
    format!(
        "{result}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        store.sites().unwrap(),
        store.salt_days().unwrap(),
        store.api_keys().unwrap(),
        store.users().unwrap(),
        store.live_sessions(0).unwrap(),
        store.goals(&site("a.com")).unwrap(),
        store.goals(&site("b.com")).unwrap(),
        store.funnels(&site("a.com")).unwrap(),
        store.funnels(&site("b.com")).unwrap(),
        store.segments(&site("a.com")).unwrap(),
    )
}

fn segment(name: &str, owner: &str, shared: bool) -> footfall_core::segment::Segment {
    footfall_core::segment::Segment::new(
        footfall_core::segment::SegmentSpec {
            name: name.into(),
            filters: serde_json::json!([["is", "visit:source", [name]]]),
            shared,
        },
        owner.into(),
    )
    .unwrap()
}

fn funnel(name: &str, steps: &[&str]) -> footfall_core::goal::Funnel {
    footfall_core::goal::Funnel::try_from(footfall_core::goal::FunnelSpec {
        name: name.into(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
    })
    .unwrap()
}

#[test]
fn postgres_answers_what_the_embedded_store_answers() {
    let db = TestDb::new("same");
    let pg = PgStore::open(&db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let duck = DuckStore::open(dir.path()).unwrap();
    for i in 0..43 {
        assert_eq!(step(&pg, i), step(&duck, i), "after step {i}");
    }
    // The funnel steps did what they say.
    assert_eq!(
        duck.funnels(&site("a.com")).unwrap(),
        vec![funnel("Checkout", &["Signup", "Blog"])]
    );
    assert_eq!(duck.funnels(&site("b.com")).unwrap().len(), 1);
    assert_eq!(
        duck.segments(&site("a.com")).unwrap(),
        vec![segment("Mobile", "ana", true)]
    );
    // The goals steps did what they say (both stores could agree on nothing).
    let goals = duck.goals(&site("a.com")).unwrap();
    assert_eq!(goals.len(), 1, "{goals:?}");
    assert!(
        matches!(&goals[0].kind, footfall_core::goal::GoalKind::Event { event, props } if event == "Sign up" && props.is_empty())
    );
    // A second connection (another node) sees the same, and reopening migrates nothing.
    let other = PgStore::open(&db.url()).unwrap();
    assert_eq!(other.sites().unwrap(), duck.sites().unwrap());
    assert_eq!(other.api_keys().unwrap(), duck.api_keys().unwrap());
}

#[test]
fn nodes_rotating_at_once_agree_on_the_salt() {
    let db = TestDb::new("salts");
    let url = db.url();
    // Eight nodes start together: migrations and the first rotation race.
    let answers: Vec<(String, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let url = url.clone();
                s.spawn(move || {
                    let store = PgStore::open(&url).unwrap();
                    store.rotate_salts(30_000, &format!("salt-{i}")).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = &answers[0];
    assert!(first.0.starts_with("salt-"), "{first:?}");
    assert!(answers.iter().all(|a| a == first), "{answers:?}");
    assert_eq!(
        PgStore::open(&url).unwrap().salt_days().unwrap(),
        vec![30_000]
    );
}

#[test]
fn an_unreachable_server_is_unavailable() {
    let err = PgStore::open("postgres://footfall@127.0.0.1:9/x")
        .err()
        .expect("nothing listens on port 9");
    assert!(
        matches!(err, footfall_store::StoreError::Unavailable(_)),
        "{err}"
    );
}

/// Nodes adding goals at once: every goal lands once, the same name is created by one of
/// them only, and the order read back is the same on every node.
#[test]
fn nodes_adding_goals_at_once_agree() {
    let db = TestDb::new("goals");
    let first = PgStore::open(&db.url()).unwrap();
    first.add_site(&site("a.com"), false, 0).unwrap();
    let created: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let url = db.url();
                scope.spawn(move || {
                    let pg = PgStore::open(&url).unwrap();
                    (0..20)
                        .map(|i| {
                            let g = goal(&format!(r#"{{"name": "g{n}-{i}", "event": "e"}}"#));
                            let mine = pg.put_goal(&site("a.com"), &g, 0).unwrap();
                            // And one name every node adds.
                            let shared =
                                goal(&format!(r#"{{"name": "shared-{i}", "event": "e{n}"}}"#));
                            let theirs = pg.put_goal(&site("a.com"), &shared, 0).unwrap();
                            assert!(mine);
                            theirs
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for i in 0..20 {
        let creators = created.iter().filter(|c| c[i]).count();
        assert_eq!(creators, 1, "shared-{i} created by {creators} nodes");
    }
    let listed = first.goals(&site("a.com")).unwrap();
    assert_eq!(listed.len(), 4 * 20 + 20);
    let other = PgStore::open(&db.url()).unwrap();
    assert_eq!(other.goals(&site("a.com")).unwrap(), listed);
}
