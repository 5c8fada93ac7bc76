//! The audit log's writer: events are queued in memory and appended to their tenants' hash
//! chains in batches, off the request path.
//!
//! Nothing is dropped. Recording never blocks and never fails; instead, requests are
//! admitted ([`AuditLog::admit`]) only while the backlog is below its capacity, so a slow or
//! unreachable database slows new requests down — and after `max_wait` refuses them — rather
//! than losing what already happened. A failed batch is retried (with back-off) until it is
//! written. [`AuditLog::flush`] waits until everything recorded before it is stored; graceful
//! shutdown calls it after the last request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use switchboard_domain::audit::AuditEvent;
use switchboard_store::Store;
use tokio::sync::{Notify, mpsc, oneshot};

/// The writer's settings.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Events waiting to be written beyond which new requests wait.
    pub capacity: usize,
    /// Most events written in one transaction.
    pub batch: usize,
    /// Longest a request waits for room before it is refused.
    pub max_wait: Duration,
    /// How long the writer gathers events into one batch after the first arrives (fewer,
    /// larger transactions; a flush or a whole batch ends it early).
    pub linger: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch: 500,
            max_wait: Duration::from_secs(5),
            linger: Duration::from_millis(50),
        }
    }
}

/// The backlog stayed full for `max_wait`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot keep up ({backlog} events waiting to be written); retry shortly")]
pub struct AuditBusy {
    pub backlog: usize,
}

/// Counters shown in `/readyz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Recorded, not yet written.
    pub backlog: usize,
    pub written: u64,
    /// Batches that failed and were retried.
    pub write_errors: u64,
}

enum Message {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
}

struct Shared {
    backlog: AtomicUsize,
    written: AtomicU64,
    write_errors: AtomicU64,
    drained: Notify,
    /// Ends the writer's linger early: a flush is waiting, or a whole batch is queued.
    urge: Notify,
}

/// The audit log.
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
    options: AuditOptions,
}

impl AuditLog {
    /// Starts the writer on `store`. It runs until the log is dropped.
    pub fn start(store: Store, options: AuditOptions) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            backlog: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            drained: Notify::new(),
            urge: Notify::new(),
        });
        tokio::spawn(write_loop(
            store,
            rx,
            shared.clone(),
            options.batch.max(1),
            options.linger,
        ));
        Arc::new(Self {
            tx,
            shared,
            options,
        })
    }

    /// Queues `event`; never blocks, never drops.
    pub fn record(&self, mut event: AuditEvent) {
        event.replace_nul();
        let backlog = self.shared.backlog.fetch_add(1, Ordering::Relaxed) + 1;
        if self.tx.send(Message::Event(event)).is_err() {
            // Only after the writer ended, which happens when the log is dropped.
            self.shared.backlog.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("audit event recorded after the audit writer stopped");
            return;
        }
        if backlog >= self.options.batch.max(1) {
            self.shared.urge.notify_one();
        }
    }

    /// Whether the backlog has room now (what [`AuditLog::admit`] waits for).
    pub fn has_room(&self) -> bool {
        self.shared.backlog.load(Ordering::Relaxed) < self.options.capacity
    }

    /// Waits until the backlog has room (immediately, normally); refuses after `max_wait`.
    pub async fn admit(&self) -> Result<(), AuditBusy> {
        if self.has_room() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.options.max_wait;
        loop {
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.has_room() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return Err(AuditBusy {
                    backlog: self.shared.backlog.load(Ordering::Relaxed),
                });
            }
        }
    }

    /// Waits until every event recorded before this call is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            self.shared.urge.notify_one();
            let _ = written.await;
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> AuditStats {
        AuditStats {
            backlog: self.shared.backlog.load(Ordering::Relaxed),
            written: self.shared.written.load(Ordering::Relaxed),
            write_errors: self.shared.write_errors.load(Ordering::Relaxed),
        }
    }
}

async fn write_loop(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Message>,
    shared: Arc<Shared>,
    batch: usize,
    linger: Duration,
) {
    let mut messages = Vec::with_capacity(batch);
    let mut events = Vec::with_capacity(batch);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut messages, batch).await > 0 {
        // Gather more for a while, unless someone is waiting for a flush. The writer sleeps
        // through the linger rather than waking for each event (a wake-up per call costs
        // the request path a task switch); a flush or a whole batch ends it early.
        let flushing = |m: &[Message]| m.iter().any(|m| matches!(m, Message::Flush(_)));
        if messages.len() < batch && !flushing(&messages) {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = shared.urge.notified() => {}
            }
            while messages.len() < batch {
                match rx.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
        }
        for message in messages.drain(..) {
            match message {
                Message::Event(event) => events.push(event),
                Message::Flush(done) => flushes.push(done),
            }
        }
        let mut delay = Duration::from_millis(50);
        while !events.is_empty() {
            match store.append_audit(&events).await {
                Ok(_) => break,
                Err(err) => {
                    let failures = shared.write_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(error = %err, events = events.len(), failures, "audit batch not written; retrying (requests wait while the backlog is full)");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let n = events.len();
        events.clear();
        shared.written.fetch_add(n as u64, Ordering::Relaxed);
        shared.backlog.fetch_sub(n, Ordering::Relaxed);
        shared.drained.notify_waiters();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_domain::audit::AuditKind;
    use switchboard_domain::tenancy::TenantId;

    use super::*;

    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            tenant: Some(TenantId::new("acme").unwrap()),
            at_ms: n as i64,
            kind: AuditKind::Call,
            actor: "user:ada@acme.com".into(),
            credential: String::new(),
            target: "demo/echo".into(),
            outcome: "ok".into(),
            reason: String::new(),
            detail: "{}".into(),
        }
    }

    async fn store() -> (Store, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("sb_audit_{}.db", uuid::Uuid::new_v4().simple()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        (store, path)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_recorded_is_written_in_order_by_flush() {
        let (store, path) = store().await;
        let log = AuditLog::start(store.clone(), AuditOptions::default());
        for n in 0..1234 {
            log.record(event(n));
        }
        log.flush().await;
        let stats = log.stats();
        assert_eq!((stats.backlog, stats.written), (0, 1234));
        assert_eq!(store.verify_audit("acme").await.unwrap(), Ok(1234));
        let first = store.audit_page("acme", 0, 2).await.unwrap();
        assert_eq!(first[0].event, event(0));
        assert_eq!(first[1].event, event(1));
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn a_full_backlog_holds_requests_back_until_it_is_written() {
        let (store, path) = store().await;
        let log = AuditLog::start(
            store,
            AuditOptions {
                capacity: 10,
                batch: 5,
                max_wait: Duration::from_millis(100),
                linger: Duration::from_millis(10),
            },
        );
        assert!(log.admit().await.is_ok());
        // Fill the backlog without letting the writer run (single-threaded runtime).
        for n in 0..10 {
            log.record(event(n));
        }
        // The writer drains it while admit waits: admitted.
        assert!(log.admit().await.is_ok());
        log.flush().await;
        assert_eq!(log.stats().written, 10);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_written_holds_events_and_refuses_new_requests() {
        let (store, path) = store().await;
        let log = AuditLog::start(
            store.clone(),
            AuditOptions {
                capacity: 3,
                batch: 10,
                max_wait: Duration::from_millis(200),
                linger: Duration::from_millis(10),
            },
        );
        // Make writes fail: the audit table disappears behind the store's back.
        sqlx_drop_audit_table(&path).await;
        for n in 0..3 {
            log.record(event(n));
        }
        let err = log.admit().await.unwrap_err();
        assert_eq!(err.backlog, 3);
        assert!(err.to_string().contains("retry shortly"), "{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats = log.stats();
        assert_eq!(stats.backlog, 3, "nothing dropped");
        assert!(stats.write_errors >= 1);
        let _ = std::fs::remove_file(path);
    }

    fn lingering(batch: usize) -> AuditOptions {
        AuditOptions {
            batch,
            linger: Duration::from_secs(60),
            ..AuditOptions::default()
        }
    }

    /// Waits up to 5 s for `written` events; returns how many were written.
    async fn written_within_5s(log: &AuditLog, written: u64) -> u64 {
        for _ in 0..500 {
            if log.stats().written >= written {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        log.stats().written
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_ends_the_writers_linger_at_once() {
        let (store, path) = store().await;
        let log = AuditLog::start(store, lingering(500));
        log.record(event(0));
        // Let the writer take the event and start lingering (60 s) before the flush.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let flushed = tokio::time::timeout(Duration::from_secs(5), log.flush()).await;
        assert!(flushed.is_ok(), "the flush waited for the linger");
        assert_eq!(log.stats().written, 1);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_batch_ends_the_linger_and_events_trickling_in_do_not() {
        let (store, path) = store().await;
        let log = AuditLog::start(store, lingering(10));
        // A few events: the writer lingers (60 s) instead of writing each as it arrives.
        for n in 0..3 {
            log.record(event(n));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log.stats().written, 0, "written before the linger ended");
        // The batch fills up: written without waiting out the linger.
        for n in 3..10 {
            log.record(event(n));
        }
        assert_eq!(written_within_5s(&log, 10).await, 10);
        let _ = std::fs::remove_file(path);
    }

    async fn sqlx_drop_audit_table(path: &std::path::Path) {
        // Renaming the table makes every insert fail until it is renamed back.
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("ALTER TABLE audit_events RENAME TO audit_events_gone")
            .execute(&mut conn)
            .await
            .unwrap();
    }
}
