//! Metadata: sites and the daily salts.

use super::DuckStore;
use crate::metadata::{ApiKeyRow, Site, Specs};
use crate::StoreError;
use ::duckdb::params;
use footfall_core::goal::Goal;
use footfall_core::SiteId;

impl DuckStore {
    /// Adds or replaces a named definition; returns whether it is new.
    pub fn put_spec<T: serde::Serialize>(
        &self,
        kind: Specs,
        site: &SiteId,
        name: &str,
        value: &T,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let spec = crate::metadata::spec_json(kind.what(), value)?;
        let table = kind.table();
        let updated = self.conn.execute(
            &format!("UPDATE {table} SET spec = ? WHERE site = ? AND name = ?"),
            params![spec, site.as_str(), name],
        )?;
        if updated == 0 {
            self.conn.execute(
                &format!("INSERT INTO {table} (site, name, spec, created_at) VALUES (?, ?, ?, ?)"),
                params![site.as_str(), name, spec, now_ms],
            )?;
        }
        Ok(updated == 0)
    }

    /// A site's definitions of a kind, oldest first.
    pub fn specs<T: serde::de::DeserializeOwned>(
        &self,
        kind: Specs,
        site: &SiteId,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT spec FROM {} WHERE site = ? ORDER BY position, name",
            kind.table()
        ))?;
        let rows = stmt.query_map([site.as_str()], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for spec in rows {
            out.extend(crate::metadata::spec_from_json(site, kind.what(), &spec?));
        }
        Ok(out)
    }

    pub fn delete_spec(&self, kind: Specs, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            &format!("DELETE FROM {} WHERE site = ? AND name = ?", kind.table()),
            params![site.as_str(), name],
        )?;
        Ok(n > 0)
    }

    pub fn put_goal(&self, site: &SiteId, goal: &Goal, now_ms: i64) -> Result<bool, StoreError> {
        self.put_spec(Specs::Goals, site, &goal.name, goal, now_ms)
    }

    pub fn goals(&self, site: &SiteId) -> Result<Vec<Goal>, StoreError> {
        self.specs(Specs::Goals, site)
    }

    pub fn delete_goal(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(Specs::Goals, site, name)
    }

    /// Registers a site; returns false if it already existed (its settings are updated).
    pub fn add_site(&self, site: &SiteId, public: bool, now_ms: i64) -> Result<bool, StoreError> {
        let existed: i64 = self.conn.query_row(
            "SELECT count(*) FROM sites WHERE domain = ?",
            [site.as_str()],
            |r| r.get(0),
        )?;
        if existed > 0 {
            self.conn.execute(
                "UPDATE sites SET public = ? WHERE domain = ?",
                params![public, site.as_str()],
            )?;
        } else {
            self.conn.execute(
                "INSERT INTO sites (domain, public, created_at) VALUES (?, ?, ?)",
                params![site.as_str(), public, now_ms],
            )?;
        }
        Ok(existed == 0)
    }

    pub fn sites(&self) -> Result<Vec<Site>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT domain, public, created_at, timezone, share_token, openpanel_client_id FROM sites ORDER BY domain",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (domain, public, created_at, timezone, share_token, openpanel_client_id) = row?;
            let domain = SiteId::parse(&domain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push(Site {
                domain,
                public,
                created_at,
                timezone,
                share_token,
                openpanel_client_id,
            });
        }
        Ok(out)
    }

    /// Sets the time zone reports use for a site (an IANA name, validated by the caller).
    pub fn set_site_timezone(&self, site: &SiteId, timezone: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sites SET timezone = ? WHERE domain = ?",
            params![timezone, site.as_str()],
        )?;
        Ok(())
    }

    /// Sets (Some) or removes (None) the site's OpenPanel client id.
    pub fn set_openpanel_client_id(
        &self,
        site: &SiteId,
        id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sites SET openpanel_client_id = ? WHERE domain = ?",
            params![id, site.as_str()],
        )?;
        Ok(())
    }

    /// Enables (Some) or disables (None) the site's public read-only link.
    pub fn set_share_token(&self, site: &SiteId, token: Option<&str>) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sites SET share_token = ? WHERE domain = ?",
            params![token, site.as_str()],
        )?;
        Ok(())
    }

    /// The salts for `day` and `day − 1`, creating today's with `fresh` if missing, and
    /// deleting every older one: a salt lives at most 48 hours.
    pub fn rotate_salts(
        &self,
        day: i64,
        fresh: impl FnOnce() -> String,
    ) -> Result<(String, Option<String>), StoreError> {
        self.conn
            .execute("DELETE FROM salts WHERE day < ?", [day - 1])?;
        let today: Option<String> = self.salt(day)?;
        let today = match today {
            Some(s) => s,
            None => {
                let s = fresh();
                self.conn.execute(
                    "INSERT INTO salts (day, salt) VALUES (?, ?)",
                    params![day, s],
                )?;
                s
            }
        };
        Ok((today, self.salt(day - 1)?))
    }

    fn salt(&self, day: i64) -> Result<Option<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT salt FROM salts WHERE day = ?")?;
        let mut rows = stmt.query([day])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }

    pub fn salt_days(&self) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT day FROM salts ORDER BY day")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl DuckStore {
    pub fn create_api_key(
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
        self.conn.execute(
            "INSERT INTO api_keys (id, hash, sites, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
            params![id, hash, sites, scopes.join(","), now_ms],
        )?;
        Ok(())
    }

    /// Returns whether a live key with this id existed.
    pub fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            params![now_ms, id],
        )?;
        Ok(n > 0)
    }

    pub fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id, hash, sites, created_at, revoked_at IS NOT NULL, scopes FROM api_keys ORDER BY created_at, id")?;
        let rows = stmt.query_map([], |r| {
            let sites: String = r.get(2)?;
            let scopes: String = r.get(5)?;
            Ok(ApiKeyRow {
                id: r.get(0)?,
                hash: r.get(1)?,
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
                created_at: r.get(3)?,
                revoked: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
