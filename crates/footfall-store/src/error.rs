use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] ::duckdb::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database schema version {found} is newer than this footfall understands ({known}); upgrade footfall")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("interrupted; progress is saved and the next run resumes")]
    Interrupted,
    #[error("invalid stored data: {0}")]
    Corrupt(String),
}
