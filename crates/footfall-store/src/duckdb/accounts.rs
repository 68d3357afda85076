//! Dashboard users and their login sessions. The store only keeps what it is given: password
//! hashing and token generation happen in the server.

use super::DuckStore;
use crate::metadata::{SessionRecord, UserRow};
use crate::StoreError;
use ::duckdb::params;

impl DuckStore {
    /// Adds a user or replaces their password; returns whether the user is new.
    pub fn put_user(
        &self,
        username: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let updated = self.conn.execute(
            "UPDATE users SET password_hash = ? WHERE username = ?",
            params![password_hash, username],
        )?;
        if updated == 0 {
            self.conn.execute(
                "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
                params![username, password_hash, now_ms],
            )?;
        }
        Ok(updated == 0)
    }

    pub fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT username, password_hash, created_at FROM users ORDER BY username")?;
        let rows = stmt.query_map([], |r| {
            Ok(UserRow {
                username: r.get(0)?,
                password_hash: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ends every login of a user (after a password change, say).
    pub fn delete_user_sessions(&self, username: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM dashboard_sessions WHERE username = ?",
            [username],
        )?;
        Ok(())
    }

    /// Removes a user and every session they have; returns whether the user existed.
    pub fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        self.delete_user_sessions(username)?;
        Ok(self
            .conn
            .execute("DELETE FROM users WHERE username = ?", [username])?
            > 0)
    }

    pub fn put_session(&self, s: &SessionRecord, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO dashboard_sessions (token_hash, username, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            params![s.token_hash, s.username, s.csrf, now_ms, s.expires_at],
        )?;
        Ok(())
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM dashboard_sessions WHERE token_hash = ?",
            [token_hash],
        )?;
        Ok(())
    }

    /// Sessions still valid at `now_ms`; expired ones are deleted on the way.
    pub fn live_sessions(&self, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        self.conn.execute(
            "DELETE FROM dashboard_sessions WHERE expires_at <= ?",
            [now_ms],
        )?;
        let mut stmt = self.conn.prepare(
            "SELECT token_hash, username, csrf, expires_at FROM dashboard_sessions ORDER BY token_hash",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SessionRecord {
                token_hash: r.get(0)?,
                username: r.get(1)?,
                csrf: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
