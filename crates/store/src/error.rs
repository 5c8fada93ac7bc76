//! Store errors: what went wrong, with what the caller should know (never a URL password).

/// A repository failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object (in this tenant: another tenant's object is reported the same way).
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The id is taken (detected from the database's unique-violation kind).
    #[error("{what} {id:?} already exists")]
    Conflict { what: &'static str, id: String },
    /// Optimistic concurrency: the object changed since the caller read `expected`.
    #[error(
        "the {what} was changed by someone else (version {expected} is stale); reload and retry"
    )]
    VersionMismatch { what: &'static str, expected: i64 },
    /// A stored value fails domain validation (edited behind the store's back, or written by
    /// an incompatible version).
    #[error("stored {what} is invalid: {message}")]
    Corrupt { what: &'static str, message: String },
    /// The caller's input cannot be stored (bad URL, domain, reserved role name, a record
    /// naming another tenant).
    #[error("{0}")]
    Invalid(String),
    /// The caller may not change this object (a tenant admin and a server a platform
    /// administrator defined); decided inside the write's transaction.
    #[error("{0}")]
    Refused(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what,
            message: message.to_string(),
        }
    }

    /// Maps a database error, turning unique violations into `Conflict`.
    pub(crate) fn db(err: sqlx::Error, what: &'static str, id: &str) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return Self::Conflict {
                what,
                id: id.to_owned(),
            };
        }
        Self::Database(err.to_string())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err.to_string())
    }
}
