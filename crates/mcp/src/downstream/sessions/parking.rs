//! Parking quiet sessions and restoring them (see the parent module's docs).
//!
//! Parking takes two steps, so that a restored session never meets its old service loop:
//! the sweeper moves a quiet session to the parked table and closes its inbox (the parking
//! is *unsettled*); when rmcp reports that the old service loop has stopped
//! (`close_session`), it *settles*. Only then does [`SessionStore::load`] hand the session's
//! `initialize` to rmcp, which restores it: [`Sessions::restore`] gives it a new service
//! loop under the same id, and rmcp replays the handshake.
//!
//! A parked session keeps its GET stream open (rmcp's keep-alives go on). What a live
//! session's service loop could send there, a parked one cannot have: progress and requests
//! belong to calls in flight, updates to subscriptions and log messages to its own upstream
//! connections (such sessions are never parked). List changes remain: the hub tells parked
//! sessions directly ([`Dormant`]); one without an open stream remembers them for the
//! stream it opens once restored, as a live session would.
//!
//! The store holds nothing but this process's parked sessions; a shared store (sessions
//! moving between replicas) slots in here with the scale-out item.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use rmcp::model::{ServerJsonRpcMessage, ServerNotification};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionState, SessionStore, SessionStoreError,
};
use switchboard_domain::tenancy::TenantId;
use tokio::sync::mpsc;

use super::{Inner, Routes, Session, SessionTransport, Sessions};
use crate::hub::{Dormant, ListChanges, TenantFilter};

/// How long a restore waits for a parked session's old service loop to stop; past it the
/// session ends (the client gets 404 and starts a new one).
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// How long after parking the idle workers are woken (the parked loops have ended by then).
const WAKE_AFTER_PARKING: Duration = Duration::from_millis(300);

/// What a parked session keeps.
pub(super) struct Parked {
    pub(super) state: Box<SessionState>,
    pub(super) tenant: Option<TenantId>,
    /// Its open GET stream.
    pub(super) standalone: Option<mpsc::Sender<ServerSseMessage>>,
    /// List changes that found no open stream, for the next one.
    pub(super) missed: ListChanges,
    /// Milliseconds after the manager's epoch of its last message, for the idle timeout.
    touched: u64,
    /// Whether its old service loop has stopped; a restore waits for it.
    settled: bool,
}

/// What the session manager asks a session's handler before parking the session.
pub trait HoldsState: Send + Sync {
    /// True while the handler keeps something a replayed handshake would not rebuild (its
    /// own upstream connections, resource subscriptions).
    fn holds_state(&self) -> bool;
}

/// Travels in the extensions of a session's `notifications/initialized`; the handler
/// attaches itself to it. A session whose handler never attached (no `initialized` yet) is
/// never parked.
#[derive(Clone, Default)]
pub struct StateProbe(Arc<OnceLock<Weak<dyn HoldsState>>>);

impl StateProbe {
    /// Names the handler to ask (the first one attached stays).
    pub fn attach(&self, handler: Weak<dyn HoldsState>) {
        let _ = self.0.set(handler);
    }

    fn allows_parking(&self) -> bool {
        self.0
            .get()
            .and_then(Weak::upgrade)
            .is_some_and(|handler| !handler.holds_state())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Session {
    /// Quiet for `after`, initialized, no request in flight, at most one GET stream open,
    /// nothing waiting for a stream, and a handler without state of its own.
    fn parkable(&self, now_ms: u64, after: Duration) -> bool {
        if now_ms.saturating_sub(self.touched.load(Ordering::Relaxed)) < millis(after)
            || self.state.get().is_none()
            || !self.probe.allows_parking()
        {
            return false;
        }
        let routes = self.routes();
        routes.inbox.is_some()
            && routes.requests.is_empty()
            && routes.shadows.iter().all(|tx| tx.is_closed())
            && routes.backlog.is_empty()
    }
}

impl Sessions {
    /// Parks every session quiet for `park_after` (the sweeper's job).
    pub(super) fn park_quiet(&self) {
        let Some(after) = self.inner.park_after else {
            return;
        };
        let now = self.inner.now_ms();
        let quiet: Vec<SessionId> = self
            .inner
            .read()
            .live
            .values()
            .filter(|s| s.parkable(now, after))
            .map(|s| s.id.clone())
            .collect();
        if quiet.is_empty() {
            return;
        }
        for id in quiet {
            self.park_if_quiet(&id, after);
        }
        // Once the parked sessions' service loops have ended, wake the runtime's idle
        // workers: each frees memory into the heaps of the threads that allocated it, and a
        // worker gives that back to the system as it goes idle again (the binary's park
        // hook), not while it sleeps.
        tokio::spawn(async {
            tokio::time::sleep(WAKE_AFTER_PARKING).await;
            for _ in 0..std::thread::available_parallelism().map_or(4, |n| 2 * n.get()) {
                tokio::spawn(std::future::ready(()));
            }
        });
    }

    /// Parks the session if it is still quiet, decided under the map's write lock (a request
    /// marks its session active under the read lock first, so none can slip in between).
    fn park_if_quiet(&self, id: &SessionId, after: Duration) {
        let session = {
            let mut table = self.inner.write();
            let now = self.inner.now_ms();
            let Some(session) = table.live.get(id) else {
                return;
            };
            let Some(state) = session.state.get().filter(|_| session.parkable(now, after)) else {
                return;
            };
            let parked = Parked {
                state: state.clone(),
                tenant: session.tenant.get().cloned(),
                standalone: session
                    .routes()
                    .standalone
                    .take()
                    .filter(|tx| !tx.is_closed()),
                missed: ListChanges::default(),
                touched: session.touched.load(Ordering::Relaxed),
                settled: false,
            };
            table.parked.insert(id.clone(), parked);
            table.live.remove(id)
        };
        if let Some(session) = session {
            tracing::debug!(session = %id, tenant = session.tenant(), "quiet session parked");
            // Its service loop reads that the inbox closed and stops; rmcp then calls
            // `close_session`, which settles the parking.
            *session.routes() = Routes::default();
        }
    }

    /// Ends the parked sessions idle for the idle timeout (the sweeper's job).
    pub(super) fn expire_parked(&self) {
        let now = self.inner.now_ms();
        let idle = millis(self.inner.idle);
        let expired = |parked: &Parked| now.saturating_sub(parked.touched) >= idle;
        let ids: Vec<SessionId> = self
            .inner
            .read()
            .parked
            .iter()
            .filter(|(_, parked)| expired(parked))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let ended = {
                let mut table = self.inner.write();
                match table.parked.get(&id) {
                    Some(parked) if expired(parked) => table.parked.remove(&id),
                    _ => None,
                }
            };
            if let Some(parked) = ended {
                tracing::debug!(session = %id, tenant = parked.tenant(), "idle parked session ended");
                (self.inner.on_end)(&id);
            }
        }
    }

    /// rmcp's `close_session`: a parked session whose old service loop just stopped settles;
    /// any other session ends (a `DELETE`, or a service loop that stopped on its own).
    pub(super) fn settle_or_end(&self, id: &SessionId) {
        {
            let mut table = self.inner.write();
            if let Some(parked) = table.parked.get_mut(id)
                && !parked.settled
            {
                parked.settled = true;
                drop(table);
                self.inner.settled.notify_waiters();
                return;
            }
        }
        self.end(id);
    }

    /// A settled parked session back to life under its id, with a new service loop; rmcp
    /// replays its handshake next.
    pub(super) fn restore(&self, id: SessionId) -> RestoreOutcome<SessionTransport> {
        let mut table = self.inner.write();
        if table.live.contains_key(&id) {
            return RestoreOutcome::AlreadyPresent;
        }
        // Gone meanwhile (idle, closed): rmcp answers 404.
        let parked = match table.parked.remove(&id) {
            Some(parked) if parked.settled => parked,
            Some(unsettled) => {
                // `load` hands over settled sessions only; never reached, kept fail-safe.
                table.parked.insert(id, unsettled);
                return RestoreOutcome::NotSupported;
            }
            None => return RestoreOutcome::NotSupported,
        };
        let transport = self.incarnate(&mut table, id, Some(parked));
        drop(table);
        tracing::debug!(session = %transport.session.id, tenant = transport.session.tenant(), "parked session restored");
        RestoreOutcome::Restored(transport)
    }
}

impl Parked {
    /// The list-change notifications `changes` stands for.
    pub(super) fn notifications(changes: ListChanges) -> impl Iterator<Item = ServerSseMessage> {
        let tools = changes
            .tools
            .then(|| ServerNotification::ToolListChangedNotification(Default::default()));
        let prompts = changes
            .prompts
            .then(|| ServerNotification::PromptListChangedNotification(Default::default()));
        let resources = changes
            .resources
            .then(|| ServerNotification::ResourceListChangedNotification(Default::default()));
        [tools, prompts, resources]
            .into_iter()
            .flatten()
            .map(|n| ServerSseMessage::from_message(ServerJsonRpcMessage::notification(n)))
    }

    fn tenant(&self) -> &str {
        self.tenant.as_ref().map_or("-", TenantId::as_str)
    }
}

impl Dormant for Inner {
    fn list_changed(&self, changes: ListChanges, audience: TenantFilter<'_>) {
        let mut table = self.write();
        for (id, parked) in &mut table.parked {
            // A session of no known tenant hears nothing (fail closed).
            if !parked.tenant.as_ref().is_some_and(audience) {
                continue;
            }
            if let Some(tx) = parked.standalone.as_ref().filter(|tx| !tx.is_closed()) {
                for event in Parked::notifications(changes) {
                    if tx.try_send(event).is_err() {
                        tracing::debug!(session = %id, tenant = parked.tenant(), "the client does not read its standalone stream; list change dropped");
                    }
                }
            } else {
                parked.missed.add(changes);
            }
        }
    }
}

/// What rmcp keeps of each session to restore it: here, the parked sessions' `initialize`.
#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let id = SessionId::from(session_id);
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let tenant = match self.inner.read().parked.get(&id) {
                None => return Ok(None),
                Some(parked) if parked.settled => return Ok(Some((*parked.state).clone())),
                Some(parked) => parked.tenant().to_owned(),
            };
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                tracing::warn!(session = %id, %tenant, "a parked session's service loop did not stop in time; the session ended");
                self.end(&id);
                return Ok(None);
            }
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        // Called once a new session's handshake has succeeded; kept for parking it.
        if let Some(session) = self.inner.read().live.get(session_id) {
            let _ = session.state.set(Box::new(state.clone()));
        }
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        // A `DELETE`: rmcp has called `close_session` first, which ended a live session.
        self.end(&SessionId::from(session_id));
        Ok(())
    }
}
