//! Usage metering and call quotas.
//!
//! [`Meter::record`] counts a finished call into an in-memory cell (tenant, UTC hour,
//! principal, credential, server, kind, item): one short lock, no I/O. A task adds the cells
//! to the store every `flush_interval` — one batch, never a write per call — and
//! [`Meter::flush`] writes what is left on shutdown.
//!
//! [`Meter::admit`] decides a call against its tenant's and its API key's daily and monthly
//! quotas. A quota's count starts from the store the first time it is needed in a period (so
//! it survives restarts and counts other replicas' calls), adds the calls this process
//! admitted since, and is re-read from the store after each flush. Replicas therefore see
//! each other's calls within one flush interval; between two reads a quota can be exceeded
//! by at most what the other replicas admit in that interval. A call is counted when it is
//! admitted (so concurrent calls cannot all slip under the limit), and failed calls count:
//! they reached the upstream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use switchboard_domain::tenancy::{Identity, ItemKind, Quotas, TenantId};
use switchboard_domain::usage::{Counters, Period, UsageKey, format_time};
use switchboard_store::Store;
use tokio::sync::Notify;

/// Settings of the meter.
#[derive(Debug, Clone)]
pub struct MeterOptions {
    /// How often counted cells are written (and quota counts re-read).
    pub flush_interval: Duration,
    /// Cells held before an early flush.
    pub max_cells: usize,
    /// Rollups older than this are deleted (checked hourly); 0 keeps them.
    pub retention_days: u32,
}

impl Default for MeterOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(10),
            max_cells: 50_000,
            retention_days: 400,
        }
    }
}

/// Whose quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    Tenant,
    Key,
}

impl QuotaScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Key => "key",
        }
    }
}

/// Why a call was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QuotaError {
    #[error(
        "call quota exhausted: this {scope}'s {limit} calls per {period} are used up; it resets at {resets}",
        scope = .scope.as_str(), period = .period.as_str(), resets = format_time(*.resets_at)
    )]
    Exceeded {
        scope: QuotaScope,
        period: Period,
        limit: u64,
        /// Unix seconds.
        resets_at: i64,
    },
    /// The store could not be read to start a quota's count (fail closed).
    #[error("quotas cannot be checked: the database is unavailable ({0}); retry shortly")]
    Unavailable(String),
}

/// One quota's count in one period.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct QuotaKey {
    tenant: TenantId,
    /// `None` for the tenant's quota, the key id for a key's.
    credential: Option<String>,
    period: Period,
    start: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct QuotaCount {
    /// Calls in the store at the last read (this process's flushed ones included).
    stored: u64,
    /// Calls this process admitted in the period.
    admitted: u64,
    /// Of those, how many this process had written when `stored` was read.
    flushed_at_read: u64,
    /// Of those, how many this process has written.
    flushed: u64,
}

impl QuotaCount {
    fn used(&self) -> u64 {
        self.stored + self.admitted.saturating_sub(self.flushed_at_read)
    }
}

/// The meter's counters, for `/readyz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Cells waiting to be written.
    pub pending_cells: usize,
    /// Cells written since start.
    pub written_cells: u64,
    pub write_errors: u64,
}

/// The cell of one call, borrowed from the call: a call into an existing cell (nearly every
/// call) allocates nothing; the owned [`UsageKey`] is made only for a new cell. Hashes as
/// `UsageKey` does: the same fields in the same order, `&str` hashing as `String`.
#[derive(Debug, Hash)]
pub struct CallCell<'a> {
    pub tenant: &'a TenantId,
    /// Unix seconds at the start of the UTC hour.
    pub hour: i64,
    pub principal: &'a Identity,
    pub credential: &'a str,
    pub server: &'a str,
    pub kind: ItemKind,
    pub item: &'a str,
}

impl CallCell<'_> {
    fn to_key(&self) -> UsageKey {
        UsageKey {
            tenant: self.tenant.clone(),
            hour: self.hour,
            principal: self.principal.clone(),
            credential: self.credential.to_owned(),
            server: self.server.to_owned(),
            kind: self.kind,
            item: self.item.to_owned(),
        }
    }
}

impl hashbrown::Equivalent<UsageKey> for CallCell<'_> {
    fn equivalent(&self, key: &UsageKey) -> bool {
        *self.tenant == key.tenant
            && self.hour == key.hour
            && *self.principal == key.principal
            && self.credential == key.credential
            && self.server == key.server
            && self.kind == key.kind
            && self.item == key.item
    }
}

/// Usage counters and quota decisions of one process.
pub struct Meter {
    store: Store,
    options: MeterOptions,
    /// Looked up by [`CallCell`] without allocating (see there).
    cells: Mutex<hashbrown::HashMap<UsageKey, Counters, std::hash::RandomState>>,
    quotas: Mutex<HashMap<QuotaKey, QuotaCount>>,
    /// One flush at a time (the periodic one, an early one, the final one).
    flushing: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    written: AtomicU64,
    write_errors: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the counters half-updated in a way that
    // matters more than losing them: keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Meter {
    /// A meter writing to `store`, with its flush task running.
    pub fn start(store: Store, options: MeterOptions) -> Arc<Self> {
        let meter = Arc::new(Self {
            store,
            options,
            cells: Mutex::default(),
            quotas: Mutex::new(HashMap::new()),
            flushing: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        });
        tokio::spawn(flush_loop(Arc::downgrade(&meter), meter.wake.clone()));
        meter
    }

    /// Counts one finished call.
    pub fn record(
        &self,
        cell: CallCell<'_>,
        error: bool,
        latency: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        // PostgreSQL cannot store NUL in text, and an upstream may name a tool with one (server
        // names are validated): a rollup that could never be written would hold back every
        // tenant's usage. Such a call is counted under the name with U+FFFD instead.
        let cleaned;
        let mut cell = cell;
        if cell.item.contains('\0') {
            cleaned = cell.item.replace('\0', "\u{FFFD}");
            cell.item = &cleaned;
        }
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let full = {
            let mut cells = lock(&self.cells);
            match cells.get_mut(&cell) {
                Some(counters) => counters.add_call(error, latency_us, bytes_in, bytes_out),
                None => {
                    let mut counters = Counters::default();
                    counters.add_call(error, latency_us, bytes_in, bytes_out);
                    cells.insert(cell.to_key(), counters);
                }
            }
            cells.len() >= self.options.max_cells
        };
        if full {
            self.wake.notify_one();
        }
    }

    /// Admits a call under its tenant's quotas and, for an API key, the key's; counts it
    /// when admitted. `credential` is the key's public id (empty for tokens).
    pub async fn admit(
        &self,
        tenant: &TenantId,
        credential: &str,
        tenant_quotas: Option<&Quotas>,
        key_quotas: Option<&Quotas>,
    ) -> Result<(), QuotaError> {
        let at = now();
        let mut wanted: Vec<(QuotaKey, QuotaScope, u64)> = Vec::new();
        for (scope, quotas) in [
            (QuotaScope::Tenant, tenant_quotas),
            (
                QuotaScope::Key,
                key_quotas.filter(|_| !credential.is_empty()),
            ),
        ] {
            let Some(quotas) = quotas else { continue };
            for period in [Period::Day, Period::Month] {
                if let Some(limit) = period.limit(quotas) {
                    let key = QuotaKey {
                        tenant: tenant.clone(),
                        credential: (scope == QuotaScope::Key).then(|| credential.to_owned()),
                        period,
                        start: period.start(at),
                    };
                    wanted.push((key, scope, limit));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        // Counts not held yet start from the store (outside the lock; a double read by two
        // first calls is harmless).
        let missing: Vec<QuotaKey> = {
            let quotas = lock(&self.quotas);
            wanted
                .iter()
                .filter(|(k, _, _)| !quotas.contains_key(k))
                .map(|(k, _, _)| k.clone())
                .collect()
        };
        for key in missing {
            let stored = self
                .store
                .usage_calls_since(&key.tenant, key.credential.as_deref(), key.start)
                .await
                .map_err(|e| QuotaError::Unavailable(e.to_string()))?;
            let flushed = 0;
            lock(&self.quotas).entry(key).or_insert(QuotaCount {
                stored,
                admitted: 0,
                flushed_at_read: flushed,
                flushed,
            });
        }
        let mut quotas = lock(&self.quotas);
        for (key, scope, limit) in &wanted {
            let used = quotas.get(key).map_or(0, QuotaCount::used);
            if used >= *limit {
                return Err(QuotaError::Exceeded {
                    scope: *scope,
                    period: key.period,
                    limit: *limit,
                    resets_at: key.period.end(at),
                });
            }
        }
        for (key, _, _) in &wanted {
            quotas.entry(key.clone()).or_default().admitted += 1;
        }
        Ok(())
    }

    /// Calls used of a tenant's (or a key's) quota period holding now, as this process
    /// sees it; `None` when no call was checked against it since start.
    pub fn quota_used(
        &self,
        tenant: &TenantId,
        credential: Option<&str>,
        period: Period,
    ) -> Option<u64> {
        let key = QuotaKey {
            tenant: tenant.clone(),
            credential: credential.map(str::to_owned),
            period,
            start: period.start(now()),
        };
        lock(&self.quotas).get(&key).map(QuotaCount::used)
    }

    /// Writes the counted cells, then re-reads the quota counts of the current periods.
    /// Failed writes keep the cells for the next attempt.
    pub async fn flush(&self) {
        let _one = self.flushing.lock().await;
        let cells: Vec<(UsageKey, Counters)> = std::mem::take(&mut *lock(&self.cells))
            .into_iter()
            .collect();
        if !cells.is_empty() {
            match self.store.add_usage(&cells).await {
                Ok(()) => {
                    self.written
                        .fetch_add(cells.len() as u64, Ordering::Relaxed);
                    self.count_flushed(&cells);
                }
                Err(err) => {
                    self.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, cells = cells.len(), "usage: cannot write the rollups; keeping them for the next attempt");
                    let mut pending = lock(&self.cells);
                    for (key, counters) in cells {
                        pending.entry(key).or_default().merge(&counters);
                    }
                    return;
                }
            }
        }
        self.refresh_quotas().await;
    }

    fn count_flushed(&self, cells: &[(UsageKey, Counters)]) {
        let mut quotas = lock(&self.quotas);
        if quotas.is_empty() {
            return;
        }
        for (cell, counters) in cells {
            for period in [Period::Day, Period::Month] {
                let start = period.start(cell.hour);
                for credential in [None, Some(cell.credential.clone())] {
                    let key = QuotaKey {
                        tenant: cell.tenant.clone(),
                        credential,
                        period,
                        start,
                    };
                    if let Some(count) = quotas.get_mut(&key) {
                        count.flushed += counters.calls;
                    }
                }
            }
        }
    }

    async fn refresh_quotas(&self) {
        let at = now();
        let keys: Vec<(QuotaKey, u64)> = {
            let mut quotas = lock(&self.quotas);
            // Periods that have ended are done with.
            quotas.retain(|k, _| k.start == k.period.start(at));
            quotas.iter().map(|(k, c)| (k.clone(), c.flushed)).collect()
        };
        for (key, flushed) in keys {
            match self
                .store
                .usage_calls_since(&key.tenant, key.credential.as_deref(), key.start)
                .await
            {
                Ok(stored) => {
                    if let Some(count) = lock(&self.quotas).get_mut(&key) {
                        count.stored = stored;
                        count.flushed_at_read = flushed;
                    }
                }
                Err(err) => {
                    tracing::debug!(error = %err, "usage: cannot re-read a quota count; keeping the last one");
                    return;
                }
            }
        }
    }

    /// Counters for `/readyz`.
    pub fn stats(&self) -> MeterStats {
        MeterStats {
            pending_cells: lock(&self.cells).len(),
            written_cells: self.written.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
        }
    }
}

/// Shortest time between two flushes when a full table asks for an early one.
const EARLY_FLUSH_SPACING: Duration = Duration::from_secs(1);

/// Flushes every interval (or when woken by a full table) until the meter is dropped. The
/// meter is held only while flushing, so dropping it ends the task.
async fn flush_loop(meter: Weak<Meter>, wake: Arc<Notify>) {
    let (interval, retention_days) = match meter.upgrade() {
        Some(m) => (m.options.flush_interval, m.options.retention_days),
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = 0i64;
    let mut last_flush = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = wake.notified() => {
                // A full table wakes the task early, but never more than once a second: with
                // the database down every new cell would wake it again (a busy retry loop).
                let next = last_flush + EARLY_FLUSH_SPACING;
                tokio::time::sleep_until(next).await;
            }
        }
        let Some(m) = meter.upgrade() else { return };
        last_flush = tokio::time::Instant::now();
        m.flush().await;
        let at = now();
        if retention_days > 0 && at - last_prune >= 3_600 {
            last_prune = at;
            let before = at - i64::from(retention_days) * 86_400;
            if let Err(err) = m.store.prune_usage(before).await {
                tracing::debug!(error = %err, "usage: cannot prune old rollups");
            }
        }
    }
}

#[cfg(test)]
mod tests;
