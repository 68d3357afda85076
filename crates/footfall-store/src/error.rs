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
    /// A networked store could not be reached, or gave up: the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A networked store refused a statement or a setting.
    #[error("store error: {0}")]
    Backend(String),
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
}
