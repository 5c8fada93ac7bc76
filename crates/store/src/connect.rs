//! Opening a store from a database URL: picking the backend, the pool settings each engine
//! needs, and error messages that say what to fix without ever showing a password.

use std::time::Duration;

use sqlx::Connection;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

use crate::{Backend, Result, Store, StoreError, schema};

/// Where a URL points, parsed just enough to configure the pool.
struct Target {
    backend: Backend,
    /// The URL handed to sqlx (SQLite gets `mode=rwc` so a missing file is created).
    url: String,
    /// An in-memory SQLite database, which lives only as long as its connection.
    memory: bool,
}

fn parse(url: &str) -> Result<Target> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let params = || query.split('&');
        let memory =
            location.trim_start_matches("//") == ":memory:" || params().any(|p| p == "mode=memory");
        let url = if memory || params().any(|p| p.starts_with("mode=")) {
            url.to_owned()
        } else if query.is_empty() {
            format!("{url}?mode=rwc")
        } else {
            format!("{url}&mode=rwc")
        };
        return Ok(Target {
            backend: Backend::Sqlite,
            url,
            memory,
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target {
            backend: Backend::Postgres,
            url: url.to_owned(),
            memory: false,
        });
    }
    // Only the scheme is echoed: the rest of an unknown URL may hold a password.
    let message = match url.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            format!("unsupported database URL scheme '{scheme}'; use sqlite://PATH or postgres://…")
        }
        _ => "the database URL has no scheme; use sqlite://PATH or postgres://…".to_owned(),
    };
    Err(StoreError::Invalid(message))
}

/// `url` fit for messages and logs: the password of `user:password@` and any `password=`
/// query parameter are replaced by `***`. SQLite URLs hold no credentials (and a path may
/// contain `@`), so they are returned unchanged.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_owned();
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            // The authority ends at the first '/', and its userinfo at the last '@' in it.
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

impl Store {
    /// Connects to `sqlite://PATH` (the file is created if missing), `sqlite::memory:` or
    /// `postgres://…`/`postgresql://…`, and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        install_default_drivers();
        let target = parse(url)?;
        let backend = target.backend;
        let memory = target.memory;
        let mut options = AnyPoolOptions::new()
            // Fail start-up (and requests for a connection) within seconds when the database
            // is unreachable, instead of sqlx's 30 s default.
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        if !memory {
                            // Readers do not block the writer, nor the writer readers.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                        }
                    }
                    Ok(())
                })
            });
        options = if memory {
            // An in-memory database dies with its last connection: keep exactly one, forever.
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            options.max_connections(8)
        };
        // One direct attempt first: a pool retries until its timeout and then reports only
        // "timed out", while this names the cause (refused, bad password, no such database).
        let probe = sqlx::AnyConnection::connect(&target.url)
            .await
            .map_err(|e| StoreError::Database(open_error(backend, url, &e)))?;
        let _ = probe.close().await;
        let pool = options
            .connect(&target.url)
            .await
            .map_err(|e| StoreError::Database(open_error(backend, url, &e)))?;
        let store = Store { pool, backend };
        schema::migrate(&store).await?;
        tracing::info!(backend = backend.as_str(), database = %redact_url(url), "database ready");
        Ok(store)
    }
}

fn open_error(backend: Backend, url: &str, err: &sqlx::Error) -> String {
    match backend {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            format!(
                "cannot open SQLite database at {path}: {err} (does the folder exist and is it writable?)"
            )
        }
        Backend::Postgres => format!("cannot connect to PostgreSQL at {}: {err}", redact_url(url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cr@t@db:5432/sb?sslmode=require"),
            "postgres://app:***@db:5432/sb?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://app@db/sb?password=hunter2&sslmode=disable"),
            "postgresql://app@db/sb?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://db/sb"), "postgres://db/sb");
        assert_eq!(redact_url("sqlite:///data/a@b.db"), "sqlite:///data/a@b.db");
    }

    #[test]
    fn sqlite_urls_create_files_and_detect_memory() {
        let file = parse("sqlite:///data/memory.db").unwrap();
        assert!(!file.memory);
        assert_eq!(file.url, "sqlite:///data/memory.db?mode=rwc");
        assert!(parse("sqlite::memory:").unwrap().memory);
        assert!(
            parse("sqlite://x.db?mode=memory&cache=shared")
                .unwrap()
                .memory
        );
        assert_eq!(
            parse("sqlite://x.db?mode=ro").unwrap().url,
            "sqlite://x.db?mode=ro"
        );
    }

    #[test]
    fn unknown_schemes_are_named_without_the_rest() {
        let err = parse("mysql://u:secret@h/db").err().unwrap().to_string();
        assert!(
            err.contains("'mysql'") && err.contains("sqlite://PATH"),
            "{err}"
        );
        let err = parse("/var/lib/x.db").err().unwrap().to_string();
        assert!(err.contains("no scheme"), "{err}");
    }
}
