//! Remote JWKS documents, fetched and cached per URL.
//!
//! A token naming a `kid` the cache lacks triggers one refetch (single-flight, at most one per
//! `min_refresh`), which is how an issuer's key rotation is picked up; keys are also refetched
//! when older than `max_age`, so a key the issuer withdrew stops working. When the issuer is
//! unreachable and nothing usable is cached, verification fails closed (503).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::error::AuthError;
use crate::keys::{KeySet, VerifyKey};

/// Limits of the JWKS cache.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    pub fetch_timeout: Duration,
    pub min_refresh: Duration,
    pub max_age: Duration,
    /// Cached keys remain usable for this long when refreshing fails.
    pub stale_grace: Duration,
    pub max_bytes: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            fetch_timeout: Duration::from_secs(5),
            min_refresh: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
            stale_grace: Duration::from_secs(3600),
            max_bytes: 1 << 20,
        }
    }
}

struct Fetched {
    keys: KeySet,
    at: Instant,
}

#[derive(Default)]
struct Entry {
    current: ArcSwapOption<Fetched>,
    /// Serialises refetches of one URL; holds when the last attempt started.
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// The cache of remote key sets.
pub struct JwksCache {
    http: reqwest::Client,
    options: JwksOptions,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl JwksCache {
    /// A cache fetching with `http`.
    pub fn new(http: reqwest::Client, options: JwksOptions) -> Self {
        Self {
            http,
            options,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entry(&self, url: &str) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.entry(url.to_owned()).or_default().clone()
    }

    /// The key `kid` of the key set at `url`.
    pub async fn key(&self, url: &str, kid: Option<&str>) -> Result<VerifyKey, AuthError> {
        let entry = self.entry(url);
        if let Some(fetched) = entry.current.load_full()
            && fetched.at.elapsed() < self.options.max_age
            && let Some(key) = fetched.keys.get(kid)
        {
            return Ok(key.clone());
        }
        self.refresh(&entry, url).await;
        let Some(fetched) = entry.current.load_full() else {
            return Err(AuthError::Unavailable(format!(
                "the issuer's keys at {url} could not be fetched"
            )));
        };
        if fetched.at.elapsed() > self.options.max_age + self.options.stale_grace {
            return Err(AuthError::Unavailable(format!(
                "the issuer's keys at {url} could not be refreshed"
            )));
        }
        fetched.keys.get(kid).cloned().ok_or_else(|| {
            AuthError::InvalidToken(format!(
                "no key {:?} in the issuer's key set",
                kid.unwrap_or("(none)")
            ))
        })
    }

    async fn refresh(&self, entry: &Entry, url: &str) {
        let mut last = entry.refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.options.min_refresh) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch(url).await {
            Ok(keys) => {
                entry.current.store(Some(Arc::new(Fetched {
                    keys,
                    at: Instant::now(),
                })));
                tracing::info!(url, "fetched issuer keys");
            }
            Err(error) => tracing::warn!(url, %error, "fetching issuer keys failed"),
        }
    }

    async fn fetch(&self, url: &str) -> Result<KeySet, String> {
        let response = self
            .http
            .get(url)
            .timeout(self.options.fetch_timeout)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.options.max_bytes as u64)
        {
            return Err("the key set is larger than 1 MiB".into());
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > self.options.max_bytes {
            return Err("the key set is larger than 1 MiB".into());
        }
        let text =
            std::str::from_utf8(&body).map_err(|_| "the key set is not UTF-8".to_string())?;
        KeySet::from_jwks(text)
    }
}
