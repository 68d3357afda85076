//! The cluster's metadata store: PostgreSQL. The same tables as the embedded store's
//! metadata, shared by every node. Writes that two nodes may race on are single statements
//! that settle the race in the database: the daily salt is inserted with `ON CONFLICT DO
//! NOTHING` and read back, so every node hashes visitors with the same salt.

mod schema;

use crate::metadata::{ApiKeyRow, MetadataStore, SessionRecord, Site, Specs, UserRow};
use crate::StoreError;
use ::postgres::{Client, NoTls};
use footfall_core::SiteId;
use std::sync::Mutex;

pub use schema::VERSION as SCHEMA_VERSION;

/// One connection to the metadata database, opened again after PostgreSQL closed it.
pub struct PgStore {
    url: String,
    /// None after the connection was found closed (until the next call reconnects) and
    /// while being dropped.
    client: Mutex<Option<Client>>,
}

/// Runs `f` on a short-lived thread of its own. The blocking client drives its own tokio
/// runtime, which panics on a thread that is already running one — and the server calls
/// its stores from async handlers (as it may for the embedded store, whose calls are
/// short). Costs a thread start per call (tens of µs); metadata calls are rare (sites and
/// keys are cached, salts change daily).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl Drop for PgStore {
    fn drop(&mut self) {
        drop_client(
            self.client
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

/// A client owns a runtime, which may not be dropped on a thread running another.
fn drop_client(client: Option<Client>) {
    if let Some(client) = client {
        off_runtime(move || drop(client));
    }
}

/// Connects again after the connection was lost (the tables exist already). Bounded, so
/// that a server that does not answer at all fails the call instead of holding it for the
/// system's TCP timeout.
fn reconnect(url: &str) -> Result<Client, ::postgres::Error> {
    let mut config: ::postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    config.connect(NoTls)
}

fn err(e: ::postgres::Error) -> StoreError {
    if e.is_closed() || e.as_db_error().is_none() {
        StoreError::Unavailable(format!("PostgreSQL: {e}"))
    } else {
        StoreError::Backend(format!("PostgreSQL: {e}"))
    }
}

fn site_id(raw: String) -> Result<SiteId, StoreError> {
    SiteId::parse(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl PgStore {
    /// Adds or replaces a named definition in one statement, so two nodes adding at once
    /// neither both create nor collide; returns whether it is new.
    fn put_spec<T: serde::Serialize>(
        &self,
        kind: Specs,
        site: &SiteId,
        name: &str,
        value: &T,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let spec = crate::metadata::spec_json(kind.what(), value)?;
        let sql = format!(
            "INSERT INTO {} (site, name, spec, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (site, name) DO UPDATE SET spec = EXCLUDED.spec \
             RETURNING (xmax = 0)",
            kind.table()
        );
        self.with(|c| {
            let row = c.query_one(&sql, &[&site.as_str(), &name, &spec, &now_ms])?;
            row.try_get(0)
        })
    }

    /// A site's definitions of a kind, oldest first.
    fn specs<T: serde::de::DeserializeOwned>(
        &self,
        kind: Specs,
        site: &SiteId,
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!(
            "SELECT spec FROM {} WHERE site = $1 ORDER BY position, name",
            kind.table()
        );
        let specs: Vec<String> = self.with(|c| {
            Ok(c.query(&sql, &[&site.as_str()])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        Ok(specs
            .iter()
            .filter_map(|s| crate::metadata::spec_from_json(site, kind.what(), s))
            .collect())
    }

    fn delete_spec(&self, kind: Specs, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {} WHERE site = $1 AND name = $2", kind.table());
        self.with(|c| c.execute(&sql, &[&site.as_str(), &name]))
            .map(|n| n > 0)
    }

    /// Connects (`postgres://user@host:port/db`) and brings the tables up to date.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let client = off_runtime(|| -> Result<Client, StoreError> {
            let mut client = Client::connect(url, NoTls).map_err(err)?;
            schema::migrate(&mut client)?;
            Ok(client)
        })?;
        Ok(PgStore {
            url: url.to_string(),
            client: Mutex::new(Some(client)),
        })
    }

    /// Runs `f` on the connection. A connection PostgreSQL closed (a restart, a failover,
    /// a network cut) never works again, so it is dropped and the next call connects
    /// anew: the call that found it closed fails, the ones after it work once the server
    /// is back. (Not retried here: a statement whose connection died may have committed.)
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, ::postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if c.as_ref().is_some_and(Client::is_closed) {
            drop_client(c.take());
        }
        let client = match c.as_mut() {
            Some(client) => client,
            None => c.insert(off_runtime(|| reconnect(&self.url)).map_err(err)?),
        };
        let result = off_runtime(|| f(client));
        if result.is_err() && client.is_closed() {
            drop_client(c.take());
        }
        result.map_err(err)
    }
}

impl MetadataStore for PgStore {
    fn add_site(&self, site: &SiteId, public: bool, now_ms: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            // xmax = 0 only on a row this statement inserted.
            let row = c.query_one(
                "INSERT INTO sites (domain, public, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (domain) DO UPDATE SET public = EXCLUDED.public \
                 RETURNING (xmax = 0)",
                &[&site.as_str(), &public, &now_ms],
            )?;
            row.try_get(0)
        })
    }

    fn sites(&self) -> Result<Vec<Site>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT domain, public, created_at, timezone, share_token, openpanel_client_id \
                 FROM sites ORDER BY domain",
                &[],
            )
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(Site {
                    domain: site_id(r.try_get(0).map_err(err)?)?,
                    public: r.try_get(1).map_err(err)?,
                    created_at: r.try_get(2).map_err(err)?,
                    timezone: r.try_get(3).map_err(err)?,
                    share_token: r.try_get(4).map_err(err)?,
                    openpanel_client_id: r.try_get(5).map_err(err)?,
                })
            })
            .collect()
    }

    fn set_site_timezone(&self, site: &SiteId, timezone: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE sites SET timezone = $1 WHERE domain = $2",
                &[&timezone, &site.as_str()],
            )
        })
        .map(drop)
    }

    fn set_share_token(&self, site: &SiteId, token: Option<&str>) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE sites SET share_token = $1 WHERE domain = $2",
                &[&token, &site.as_str()],
            )
        })
        .map(drop)
    }

    fn set_openpanel_client_id(&self, site: &SiteId, id: Option<&str>) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE sites SET openpanel_client_id = $1 WHERE domain = $2",
                &[&id, &site.as_str()],
            )
        })
        .map(drop)
    }

    fn put_goal(
        &self,
        site: &SiteId,
        goal: &footfall_core::goal::Goal,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.put_spec(Specs::Goals, site, &goal.name, goal, now_ms)
    }

    fn goals(&self, site: &SiteId) -> Result<Vec<footfall_core::goal::Goal>, StoreError> {
        self.specs(Specs::Goals, site)
    }

    fn delete_goal(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(Specs::Goals, site, name)
    }

    fn put_funnel(
        &self,
        site: &SiteId,
        funnel: &footfall_core::goal::Funnel,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.put_spec(Specs::Funnels, site, &funnel.name, funnel, now_ms)
    }

    fn funnels(&self, site: &SiteId) -> Result<Vec<footfall_core::goal::Funnel>, StoreError> {
        self.specs(Specs::Funnels, site)
    }

    fn delete_funnel(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(Specs::Funnels, site, name)
    }

    fn put_segment(
        &self,
        site: &SiteId,
        segment: &footfall_core::segment::Segment,
        now_ms: i64,
    ) -> Result<Option<bool>, StoreError> {
        let spec = crate::metadata::spec_json("segment", segment)?;
        // Replaces only the same owner's: another's name makes the update do nothing, and
        // no row comes back.
        self.with(|c| {
            let row = c.query_opt(
                "INSERT INTO segments (site, name, spec, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (site, name) DO UPDATE SET spec = EXCLUDED.spec \
                 WHERE (segments.spec::jsonb ->> 'owner') = $5 \
                 RETURNING (xmax = 0)",
                &[
                    &site.as_str(),
                    &segment.name,
                    &spec,
                    &now_ms,
                    &segment.owner,
                ],
            )?;
            row.map(|r| r.try_get(0)).transpose()
        })
    }

    fn segments(&self, site: &SiteId) -> Result<Vec<footfall_core::segment::Segment>, StoreError> {
        self.specs(Specs::Segments, site)
    }

    fn delete_segment(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(Specs::Segments, site, name)
    }

    fn set_catalogue(
        &self,
        site: &SiteId,
        entries: &[footfall_core::catalogue::Entry],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let spec = crate::metadata::spec_json("catalogue", &entries)?;
        // One statement: two nodes setting it at once get two revisions, never one.
        let revision: i64 = self.with(|c| {
            c.query_one(
                "INSERT INTO catalogues (site, spec, revision, updated_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (site) DO UPDATE SET spec = EXCLUDED.spec, \
                 revision = catalogues.revision + 1, updated_at = EXCLUDED.updated_at \
                 RETURNING revision",
                &[&site.as_str(), &spec, &now_ms],
            )?
            .try_get(0)
        })?;
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    fn catalogue(&self, site: &SiteId) -> Result<footfall_core::catalogue::Catalogue, StoreError> {
        let row: Option<(i64, String)> = self.with(|c| {
            Ok(c.query_opt(
                "SELECT revision, spec FROM catalogues WHERE site = $1",
                &[&site.as_str()],
            )?
            .map(|r| (r.get(0), r.get(1))))
        })?;
        Ok(crate::metadata::stored_catalogue(site, row))
    }

    fn rotate_salts(&self, day: i64, fresh: &str) -> Result<(String, Option<String>), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM salts WHERE day < $1", &[&(day - 1)])?;
            // The first node to rotate decides today's salt; the others read it.
            tx.execute(
                "INSERT INTO salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
                &[&day, &fresh],
            )?;
            let rows = tx.query(
                "SELECT day, salt FROM salts WHERE day IN ($1, $2)",
                &[&day, &(day - 1)],
            )?;
            tx.commit()?;
            let mut today = String::new();
            let mut yesterday = None;
            for r in rows {
                let (d, s): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
                if d == day {
                    today = s;
                } else {
                    yesterday = Some(s);
                }
            }
            Ok((today, yesterday))
        })
    }

    fn salt_days(&self) -> Result<Vec<i64>, StoreError> {
        let rows = self.with(|c| c.query("SELECT day FROM salts ORDER BY day", &[]))?;
        rows.iter().map(|r| r.try_get(0).map_err(err)).collect()
    }

    fn create_api_key(
        &self,
        id: &str,
        hash: &str,
        sites: &[SiteId],
        scopes: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let sites = sites
            .iter()
            .map(SiteId::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let scopes = scopes.join(",");
        self.with(|c| {
            c.execute(
                "INSERT INTO api_keys (id, hash, sites, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&id, &hash, &sites, &scopes, &now_ms],
            )
        })
        .map(drop)
    }

    fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                &[&now_ms, &id],
            )
        })
        .map(|n| n > 0)
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT id, hash, sites, created_at, revoked_at IS NOT NULL, scopes FROM api_keys \
                 ORDER BY created_at, id",
                &[],
            )
        })?;
        rows.into_iter()
            .map(|r| {
                let sites: String = r.try_get(2).map_err(err)?;
                let scopes: String = r.try_get(5).map_err(err)?;
                Ok(ApiKeyRow {
                    id: r.try_get(0).map_err(err)?,
                    hash: r.try_get(1).map_err(err)?,
                    sites: sites
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    scopes: scopes
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    created_at: r.try_get(3).map_err(err)?,
                    revoked: r.try_get(4).map_err(err)?,
                })
            })
            .collect()
    }

    fn put_user(
        &self,
        username: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            let row = c.query_one(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash \
                 RETURNING (xmax = 0)",
                &[&username, &password_hash, &now_ms],
            )?;
            row.try_get(0)
        })
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT username, password_hash, created_at FROM users ORDER BY username",
                &[],
            )
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(UserRow {
                    username: r.try_get(0).map_err(err)?,
                    password_hash: r.try_get(1).map_err(err)?,
                    created_at: r.try_get(2).map_err(err)?,
                })
            })
            .collect()
    }

    fn delete_user_sessions(&self, username: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM dashboard_sessions WHERE username = $1",
                &[&username],
            )
        })
        .map(drop)
    }

    fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "DELETE FROM dashboard_sessions WHERE username = $1",
                &[&username],
            )?;
            let n = tx.execute("DELETE FROM users WHERE username = $1", &[&username])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn put_session(&self, s: &SessionRecord, now_ms: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO dashboard_sessions (token_hash, username, csrf, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&s.token_hash, &s.username, &s.csrf, &now_ms, &s.expires_at],
            )
        })
        .map(drop)
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM dashboard_sessions WHERE token_hash = $1",
                &[&token_hash],
            )
        })
        .map(drop)
    }

    fn live_sessions(&self, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = self.with(|c| {
            c.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at <= $1",
                &[&now_ms],
            )?;
            c.query(
                "SELECT token_hash, username, csrf, expires_at FROM dashboard_sessions \
                 ORDER BY token_hash",
                &[],
            )
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(SessionRecord {
                    token_hash: r.try_get(0).map_err(err)?,
                    username: r.try_get(1).map_err(err)?,
                    csrf: r.try_get(2).map_err(err)?,
                    expires_at: r.try_get(3).map_err(err)?,
                })
            })
            .collect()
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        // Every statement is committed (and WAL-logged by the server) when it returns.
        Ok(())
    }

    fn connect(&self) -> Result<Box<dyn MetadataStore>, StoreError> {
        Ok(Box::new(PgStore::open(&self.url)?))
    }
}
