//! Legacy Streamable HTTP sessions: the [`SessionManager`] behind rmcp's
//! `StreamableHttpService`.
//!
//! rmcp's `LocalSessionManager` runs a worker task per session between the HTTP handler and
//! the session's service loop, with four channels of full JSON-RPC messages (each allocating
//! a 32-slot block up front) and a replay cache per request stream. The benchmark measured
//! ~76 KiB per idle session and one extra pair of task wake-ups per call. Here a session is
//! a routing table behind a mutex: a client message goes straight into the service loop's
//! inbox (a channel of boxed messages), and the service loop's `send` delivers each reply to
//! the stream of the HTTP request it answers, in the calling task. One sweeper task per
//! manager ends idle sessions, instead of a timer per session.
//!
//! Nothing is replayed (there is no event store): rmcp primes each GET stream with event id
//! `0`, so a client that loses it reconnects with `Last-Event-ID: 0`, and that reconnection
//! becomes the session's standalone stream. Messages sent while no GET stream is open wait
//! (the last 16) for the next one; a server-to-client request tied to a call whose client
//! has gone, or meeting a full stream, fails at once instead of waiting for an answer that
//! cannot come.
//!
//! A quiet session is *parked* (`parking.rs`): after `park_after` without a message, with no
//! request in flight and no state of its own (per-session upstream connections, resource
//! subscriptions), its service loop stops and only what `initialize` said and its GET stream
//! stay (a few KiB instead of the loop's ~40). The next request for it makes
//! rmcp restore it through the [`SessionStore`](rmcp::transport::streamable_http_server::session::SessionStore)
//! this manager also implements: a new service loop under the same id, the handshake
//! replayed. The client sees the same session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, GetExtensions, GetMeta, JsonRpcMessage, RequestId,
    ServerJsonRpcMessage,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager, SessionState,
};
use tokio::sync::mpsc;

use switchboard_domain::tenancy::TenantId;

use crate::caller::Caller;

/// Messages a client may have queued for its session's service loop before a new one waits.
const INBOX: usize = 16;
/// Messages a stream (a POST's or the GET one) may hold for a client that does not read it;
/// beyond that, notifications are dropped with a warning rather than stalling the session.
const STREAM_BUFFER: usize = 64;
/// Messages kept for the next GET stream while none is open.
const BACKLOG: usize = 16;
/// Extra standalone streams of one session that only carry keep-alives (see `standalone`).
const MAX_SHADOW_STREAMS: usize = 32;

/// Why a session could not take a message.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session {0} not found")]
    NotFound(SessionId),
    #[error("session {0} ended")]
    Ended(SessionId),
    #[error("session {0} has no open stream that can carry this request to the client")]
    Undeliverable(SessionId),
}

/// The open legacy sessions of one `/mcp` service.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: RwLock<Table>,
    /// A session with no request in flight and no message either way for this long ends.
    idle: Duration,
    /// A quiet session without state of its own is parked after this long (`None`: never).
    park_after: Option<Duration>,
    /// Woken when a parked session's service loop has stopped (see [`Parked::settled`]).
    settled: tokio::sync::Notify,
    epoch: Instant,
    sweeping: AtomicBool,
    /// Told the id of every session that ends, however it ends.
    on_end: Box<dyn Fn(&str) + Send + Sync>,
}

/// The sessions with a service loop, and the parked ones.
#[derive(Default)]
struct Table {
    live: HashMap<SessionId, Arc<Session>>,
    parked: HashMap<SessionId, Parked>,
}

/// One session: its inbox and where its service loop's messages go.
struct Session {
    id: SessionId,
    /// Whose session it is, from the `initialize` request (for the log).
    tenant: OnceLock<TenantId>,
    /// Milliseconds after the manager's epoch of the last message either way.
    touched: AtomicU64,
    routes: Mutex<Routes>,
    /// What the client's `initialize` said: all a parked session keeps.
    state: OnceLock<Box<SessionState>>,
    /// Asks the session's handler whether it holds state that parking would lose.
    probe: StateProbe,
}

impl Sessions {
    /// A manager whose sessions end after `idle` without traffic; `on_end` hears of each
    /// session that ends (closed by the client or the admin API, idle, or its service loop
    /// stopped).
    pub fn new(
        idle: Duration,
        park_after: Option<Duration>,
        on_end: impl Fn(&str) + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sessions: RwLock::default(),
                idle,
                park_after,
                settled: tokio::sync::Notify::new(),
                epoch: Instant::now(),
                sweeping: AtomicBool::new(false),
                on_end: Box::new(on_end),
            }),
        }
    }

    /// Open sessions, parked ones included.
    pub fn len(&self) -> usize {
        let table = self.inner.read();
        table.live.len() + table.parked.len()
    }

    /// Parked sessions.
    pub fn parked(&self) -> usize {
        self.inner.read().parked.len()
    }

    /// The manager as the hub sees it: its parked sessions hear of list changes there.
    pub fn dormant(&self) -> Weak<dyn crate::hub::Dormant> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        weak
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the session `id` is open (parked or not).
    pub fn contains(&self, id: &str) -> bool {
        let table = self.inner.read();
        table.live.contains_key(id) || table.parked.contains_key(id)
    }

    /// Ends the session `id`; `false` when none was open.
    pub fn close(&self, id: &str) -> bool {
        let id = SessionId::from(id);
        let open = self.contains(&id);
        self.end(&id);
        open
    }

    /// The open session `id`, marked active (under the map's lock, so that the sweeper, which
    /// checks again under the write lock, cannot end it in between).
    fn session(&self, id: &SessionId) -> Result<Arc<Session>, SessionError> {
        let sessions = self.inner.read();
        let session = sessions
            .live
            .get(id)
            .ok_or_else(|| SessionError::NotFound(id.clone()))?;
        session.touch(self.inner.now_ms());
        Ok(session.clone())
    }

    /// Ends the session, parked or not: its streams close, and its service loop stops once
    /// it has read what was queued.
    fn end(&self, id: &SessionId) {
        let (live, parked) = {
            let mut table = self.inner.write();
            (table.live.remove(id), table.parked.remove(id).is_some())
        };
        if let Some(session) = &live {
            *session.routes() = Routes::default();
        }
        if live.is_some() || parked {
            (self.inner.on_end)(id);
        }
    }

    /// Ends the live session if `ending` says so, decided under the map's write lock.
    fn end_if(&self, id: &SessionId, ending: impl FnOnce(&Session) -> bool) {
        let session = {
            let mut table = self.inner.write();
            match table.live.get(id) {
                Some(session) if ending(session) => table.live.remove(id),
                _ => None,
            }
        };
        if let Some(session) = session {
            *session.routes() = Routes::default();
            (self.inner.on_end)(id);
        }
    }

    /// Starts the sweeper on first use (it needs the runtime); it stops with the manager.
    fn sweep_idle_sessions(&self) {
        if self.inner.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let shortest = self
            .inner
            .park_after
            .map_or(self.inner.idle, |p| p.min(self.inner.idle));
        let every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else { return };
                let sessions = Self { inner };
                for id in sessions.idle_ids() {
                    let now = sessions.inner.now_ms();
                    sessions.end_if(&id, |s| {
                        let idle = s.idle(now, sessions.inner.idle);
                        if idle {
                            tracing::debug!(session = %s.id, tenant = s.tenant(), "idle session ended");
                        }
                        idle
                    });
                }
                sessions.park_quiet();
                sessions.expire_parked();
            }
        });
    }

    /// A GET stream of session `id` (see [`Routes::standalone`]).
    fn standalone_stream(
        &self,
        id: &SessionId,
        reconnection: bool,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let mut rx = self.session(id)?.routes().standalone(reconnection);
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    fn idle_ids(&self) -> Vec<SessionId> {
        let now = self.inner.now_ms();
        self.inner
            .read()
            .live
            .values()
            .filter(|s| s.idle(now, self.inner.idle))
            .map(|s| s.id.clone())
            .collect()
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.sessions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.sessions.write().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        millis_since(self.epoch)
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Session {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self, now_ms: u64) {
        self.touched.store(now_ms, Ordering::Relaxed);
    }

    /// The session's tenant, once its `initialize` has been seen.
    fn tenant(&self) -> &str {
        self.tenant.get().map_or("-", TenantId::as_str)
    }

    /// No message either way for `idle`, and no call whose client still waits for it (a
    /// call whose client went away — or that will never be answered — does not keep the
    /// session).
    fn idle(&self, now_ms: u64, idle: Duration) -> bool {
        let idle = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(self.touched.load(Ordering::Relaxed)) >= idle
            && self
                .routes()
                .requests
                .values()
                .all(|(tx, _)| tx.is_closed())
    }

    /// Queues a client message for the service loop; waits while the inbox is full.
    async fn push(&self, mut message: ClientJsonRpcMessage) -> Result<(), SessionError> {
        // The handler attaches itself to the probe when the session starts.
        if let JsonRpcMessage::Notification(n) = &mut message
            && let ClientNotification::InitializedNotification(_) = &n.notification
        {
            n.notification.extensions_mut().insert(self.probe.clone());
        }
        let inbox = self.routes().inbox.clone();
        let ended = || SessionError::Ended(self.id.clone());
        inbox
            .ok_or_else(ended)?
            .send(Box::new(message))
            .await
            .map_err(|_| ended())
    }

    /// Opens the stream that will carry what answers `request`; returns it with the
    /// request's id.
    fn open_request_stream(
        &self,
        request: &ClientJsonRpcMessage,
    ) -> (mpsc::Receiver<ServerSseMessage>, Option<RequestId>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let JsonRpcMessage::Request(request) = request else {
            return (rx, None);
        };
        let token = request.request.get_meta().get_progress_token();
        let mut routes = self.routes();
        // The same id again while the first is in flight: the first stream ends.
        routes.forget(&request.id);
        if let Some(token) = &token {
            routes.progress.insert(token.clone(), request.id.clone());
        }
        routes.requests.insert(request.id.clone(), (tx, token));
        (rx, Some(request.id.clone()))
    }
}

impl SessionManager for Sessions {
    type Error = SessionError;
    type Transport = SessionTransport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.sweep_idle_sessions();
        let id: SessionId = uuid::Uuid::new_v4().simple().to_string().into();
        let transport = self.incarnate(&mut self.inner.write(), id.clone(), None);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let session = self.session(id)?;
        if let JsonRpcMessage::Request(request) = &message
            && let Some(caller) = request
                .request
                .extensions()
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Arc<Caller>>())
        {
            let _ = session.tenant.set(caller.tenant().clone());
        }
        // A client that goes away during the handshake leaves no session behind (no owner
        // would be recorded for it).
        let mut abandoned = EndOnDrop(Some((self.clone(), id.clone())));
        let (mut replies, _) = session.open_request_stream(&message);
        session.push(message).await?;
        while let Some(reply) = replies.recv().await {
            if let Some(message) = reply.message
                && matches!(
                    *message,
                    JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_)
                )
            {
                abandoned.0 = None;
                return Ok(Arc::unwrap_or_clone(message));
            }
        }
        Err(SessionError::Ended(id.clone()))
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        // Marks it active: rmcp's next call for this request (`create_stream`) must find it,
        // so it cannot be parked in between. A parked session is not here: rmcp restores it.
        Ok(self.session(id).is_ok())
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        // Also how rmcp reports that a service loop stopped, a parked session's included.
        self.settle_or_end(id);
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let session = self.session(id)?;
        let (mut replies, request) = session.open_request_stream(&message);
        // Until the message is queued, the route is forgotten if this POST goes away (no
        // reply would ever come for it).
        let mut pending = ForgetOnDrop(request.map(|id| (session.clone(), id)));
        session.push(message).await?;
        pending.0 = None;
        Ok(futures::stream::poll_fn(move |cx| replies.poll_recv(cx)))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        let session = self.session(id)?;
        // A cancelled request's stream ends now; the service loop drops its reply.
        if let JsonRpcMessage::Notification(n) = &message
            && let ClientNotification::CancelledNotification(c) = &n.notification
            && let Some(request) = &c.params.request_id
        {
            session.routes().forget(request);
        }
        session.push(message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.standalone_stream(id, false)
    }

    async fn resume(
        &self,
        id: &SessionId,
        _last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // A client reconnecting its GET stream (rmcp primes it with event id 0): nothing is
        // replayed but what waited for a stream; the reconnection replaces the old stream,
        // which the client has given up.
        self.standalone_stream(id, true)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(self.restore(id))
    }
}

impl Sessions {
    /// A new service loop's session under `id` (new, or `parked` restored), live in
    /// `table`; returns its transport.
    fn incarnate(
        &self,
        table: &mut Table,
        id: SessionId,
        parked: Option<Parked>,
    ) -> SessionTransport {
        let (tx, rx) = mpsc::channel(INBOX);
        let mut routes = Routes {
            inbox: Some(tx),
            ..Routes::default()
        };
        let (tenant, state) = match parked {
            // The restored session goes on with the GET stream and what it missed.
            Some(Parked {
                state,
                tenant,
                standalone,
                missed,
                ..
            }) => {
                routes.standalone = standalone;
                routes.backlog.extend(Parked::notifications(missed));
                (
                    tenant.map(OnceLock::from).unwrap_or_default(),
                    OnceLock::from(state),
                )
            }
            None => (OnceLock::new(), OnceLock::new()),
        };
        let session = Arc::new(Session {
            id: id.clone(),
            tenant,
            touched: AtomicU64::new(self.inner.now_ms()),
            routes: Mutex::new(routes),
            state,
            probe: StateProbe::default(),
        });
        table.live.insert(id, session.clone());
        SessionTransport {
            session,
            inbox: rx,
            epoch: self.inner.epoch,
        }
    }
}

/// Ends a session when dropped, unless emptied.
struct EndOnDrop(Option<(Sessions, SessionId)>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some((sessions, id)) = self.0.take() {
            sessions.end(&id);
        }
    }
}

/// Forgets a request's route when dropped, unless emptied.
struct ForgetOnDrop(Option<(Arc<Session>, RequestId)>);

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        if let Some((session, id)) = self.0.take() {
            session.routes().forget(&id);
        }
    }
}

mod parking;
mod routes;
mod transport;

use parking::Parked;
pub use parking::{HoldsState, StateProbe};
use routes::Routes;
pub use transport::SessionTransport;

#[cfg(test)]
mod tests;
