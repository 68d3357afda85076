//! One named value per cluster (not per partition), such as the live counters
//! `footfall migrate` copies in for every node to add.

use super::conn::Conn;
use ::redis::RedisResult;
use std::sync::Arc;

pub struct Blob {
    conn: Arc<Conn>,
    key: String,
}

impl Blob {
    pub fn new(conn: Arc<Conn>, prefix: &str, name: &str) -> Blob {
        Blob {
            conn,
            key: format!("{prefix}:{name}"),
        }
    }

    pub fn put(&self, value: &[u8]) -> RedisResult<()> {
        self.conn
            .with(|c| ::redis::cmd("SET").arg(&self.key).arg(value).query(c))
    }

    pub fn get(&self) -> RedisResult<Option<Vec<u8>>> {
        self.conn
            .with(|c| ::redis::cmd("GET").arg(&self.key).query(c))
    }
}
