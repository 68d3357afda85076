//! Snapshots of in-memory state taken at a log position, so a restart loads them and replays
//! only the log after that position. Written atomically (temporary file, fsync, rename,
//! directory fsync) and checksummed: a damaged snapshot is reported and ignored, and the
//! state is rebuilt another way (see `recovery.rs`), never misread.

use footfall_store::LogPosition;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FFSNAP1\n";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {0} is damaged (bad header or checksum)")]
    Damaged(PathBuf),
    /// A snapshot kept elsewhere than a file (the cluster keeps them in Redis).
    #[error("snapshot {name}: {reason}")]
    Remote { name: String, reason: String },
}

/// Where a snapshot is kept: a file in the data directory (embedded), or beside the
/// partition's log in Redis (cluster). Recovery reads either the same way.
pub trait SnapshotStore: Send + Sync {
    /// What to call it in logs.
    fn describe(&self) -> String;
    /// Replaces the snapshot with `payload` taken at `position`, durably.
    fn write(&self, position: LogPosition, payload: &[u8]) -> Result<(), SnapshotError>;
    /// The snapshot's position and payload, or None if there is none.
    fn read(&self) -> Result<Option<(LogPosition, Vec<u8>)>, SnapshotError>;
}

impl SnapshotStore for SnapshotFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn write(&self, position: LogPosition, payload: &[u8]) -> Result<(), SnapshotError> {
        SnapshotFile::write(self, position, payload)
    }

    fn read(&self) -> Result<Option<(LogPosition, Vec<u8>)>, SnapshotError> {
        SnapshotFile::read(self)
    }
}

/// One snapshot file in the data directory.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(dir: &Path, name: &str) -> Self {
        SnapshotFile {
            path: dir.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Replaces the snapshot with `payload` taken at `position`, durably.
    pub fn write(&self, position: LogPosition, payload: &[u8]) -> Result<(), SnapshotError> {
        let tmp = self.path.with_extension("tmp");
        let mut buf = Vec::with_capacity(payload.len() + 20);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&position.0.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&position.0.to_le_bytes());
        h.update(payload);
        buf.extend_from_slice(&h.finalize().to_le_bytes());
        buf.extend_from_slice(payload);
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| self.io(e))
    }

    /// The snapshot's position and payload, or None if there is none.
    pub fn read(&self) -> Result<Option<(LogPosition, Vec<u8>)>, SnapshotError> {
        let mut buf = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => f.read_to_end(&mut buf).map_err(|e| self.io(e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let damaged = || SnapshotError::Damaged(self.path.clone());
        if buf.len() < 20 || &buf[..8] != MAGIC {
            return Err(damaged());
        }
        let pos = u64::from_le_bytes(buf[8..16].try_into().map_err(|_| damaged())?);
        let crc = u32::from_le_bytes(buf[16..20].try_into().map_err(|_| damaged())?);
        let payload = buf.split_off(20);
        let mut h = crc32fast::Hasher::new();
        h.update(&pos.to_le_bytes());
        h.update(&payload);
        if h.finalize() != crc {
            return Err(damaged());
        }
        Ok(Some((LogPosition(pos), payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let f = SnapshotFile::new(dir.path(), "x.snap");
        assert!(f.read().unwrap().is_none());
        f.write(LogPosition(42), b"hello").unwrap();
        assert_eq!(
            f.read().unwrap(),
            Some((LogPosition(42), b"hello".to_vec()))
        );
        f.write(LogPosition(43), b"again").unwrap();
        assert_eq!(
            f.read().unwrap(),
            Some((LogPosition(43), b"again".to_vec()))
        );
        let mut bytes = std::fs::read(f.path()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(f.path(), &bytes).unwrap();
        assert!(matches!(f.read(), Err(SnapshotError::Damaged(_))));
    }
}
