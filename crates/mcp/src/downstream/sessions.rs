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
//! SSE events carry no event ids (there is no replay store), so clients do not try to resume
//! a stream; a `Last-Event-ID` that arrives anyway opens the session's standalone stream.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, GetExtensions, GetMeta, JsonRpcMessage,
    ProgressToken, RequestId, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::service::OriginatingRequestId;
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};
use tokio::sync::mpsc;

/// Messages a client may have queued for its session's service loop before a new one waits.
const INBOX: usize = 16;
/// Messages the standalone (GET) stream may hold for a client that does not read it; beyond
/// that, new ones are dropped with a warning rather than stalling the session.
const STANDALONE_BUFFER: usize = 64;
/// Extra standalone streams of one session that only carry keep-alives (see `standalone`).
const MAX_SHADOW_STREAMS: usize = 32;

/// Why a session could not take a message.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session {0} not found")]
    NotFound(SessionId),
    #[error("session {0} ended")]
    Ended(SessionId),
}

/// The open legacy sessions of one `/mcp` service.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: RwLock<HashMap<SessionId, Arc<Session>>>,
    /// A session with no request in flight and no message either way for this long ends.
    idle: Duration,
    epoch: Instant,
    sweeping: AtomicBool,
    /// Told the id of every session that ends, however it ends.
    on_end: Box<dyn Fn(&str) + Send + Sync>,
}

/// One session: its inbox and where its service loop's messages go.
struct Session {
    id: SessionId,
    /// Milliseconds after the manager's epoch of the last message either way.
    touched: AtomicU64,
    routes: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    /// `None` once the session is closed: the service loop then reads its last messages and
    /// ends.
    inbox: Option<mpsc::Sender<Box<ClientJsonRpcMessage>>>,
    /// The open POST streams by the JSON-RPC id of the request they answer, with the
    /// request's progress token.
    requests: HashMap<
        RequestId,
        (
            mpsc::UnboundedSender<ServerSseMessage>,
            Option<ProgressToken>,
        ),
    >,
    progress: HashMap<ProgressToken, RequestId>,
    /// The GET stream: notifications and requests tied to no open POST.
    standalone: Option<mpsc::Sender<ServerSseMessage>>,
    shadows: Vec<mpsc::Sender<ServerSseMessage>>,
}

impl Sessions {
    /// A manager whose sessions end after `idle` without traffic; `on_end` hears of each
    /// session that ends (closed by the client or the admin API, idle, or its service loop
    /// stopped).
    pub fn new(idle: Duration, on_end: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                sessions: RwLock::default(),
                idle,
                epoch: Instant::now(),
                sweeping: AtomicBool::new(false),
                on_end: Box::new(on_end),
            }),
        }
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the session `id` is open.
    pub fn contains(&self, id: &str) -> bool {
        self.inner.read().contains_key(id)
    }

    fn session(&self, id: &SessionId) -> Result<Arc<Session>, SessionError> {
        let session = self
            .inner
            .read()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::NotFound(id.clone()))?;
        session.touch(self.inner.now_ms());
        Ok(session)
    }

    /// Ends the session: its streams close, and its service loop stops once it has read
    /// what was queued.
    fn end(&self, id: &SessionId) {
        let session = self.inner.write().remove(id);
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
        let every = (self.inner.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else { return };
                let sessions = Self { inner };
                for id in sessions.idle_ids() {
                    tracing::debug!(session = %id, "idle session ended");
                    sessions.end(&id);
                }
            }
        });
    }

    fn idle_ids(&self) -> Vec<SessionId> {
        let now = self.inner.now_ms();
        let idle = u64::try_from(self.inner.idle.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .read()
            .values()
            .filter(|s| {
                now.saturating_sub(s.touched.load(Ordering::Relaxed)) >= idle
                    && s.routes().requests.is_empty()
            })
            .map(|s| s.id.clone())
            .collect()
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SessionId, Arc<Session>>> {
        self.sessions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SessionId, Arc<Session>>> {
        self.sessions.write().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Session {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self, now_ms: u64) {
        self.touched.store(now_ms, Ordering::Relaxed);
    }

    /// Queues a client message for the service loop; waits while the inbox is full.
    async fn push(&self, message: ClientJsonRpcMessage) -> Result<(), SessionError> {
        let inbox = self.routes().inbox.clone();
        let ended = || SessionError::Ended(self.id.clone());
        inbox
            .ok_or_else(ended)?
            .send(Box::new(message))
            .await
            .map_err(|_| ended())
    }

    /// Opens the stream that will carry what answers `request`.
    fn open_request_stream(
        &self,
        request: &ClientJsonRpcMessage,
    ) -> mpsc::UnboundedReceiver<ServerSseMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let JsonRpcMessage::Request(request) = request {
            let token = request.request.get_meta().get_progress_token();
            let mut routes = self.routes();
            if let Some(token) = &token {
                routes.progress.insert(token.clone(), request.id.clone());
            }
            if let Some((_, Some(old))) = routes.requests.insert(request.id.clone(), (tx, token)) {
                // The same id again while the first is in flight: the first stream ends.
                routes.progress.remove(&old);
            }
        }
        rx
    }

    /// Delivers one message of the service loop: a reply to its request's stream (which
    /// then ends), progress and requests tied to an open request to that request's stream,
    /// everything else to the standalone stream.
    fn deliver(&self, message: ServerJsonRpcMessage) -> Result<(), SessionError> {
        let mut routes = self.routes();
        if routes.inbox.is_none() {
            return Err(SessionError::Ended(self.id.clone()));
        }
        let (request, ends) = match &message {
            JsonRpcMessage::Response(r) => (Some(r.id.clone()), true),
            JsonRpcMessage::Error(e) => (e.id.clone(), true),
            JsonRpcMessage::Request(r) => (
                r.request
                    .extensions()
                    .get::<OriginatingRequestId>()
                    .map(|o| o.0.clone()),
                false,
            ),
            JsonRpcMessage::Notification(n) => match &n.notification {
                ServerNotification::ProgressNotification(p) => (
                    routes.progress.get(&p.params.progress_token).cloned(),
                    false,
                ),
                ServerNotification::CancelledNotification(c) => {
                    (c.params.request_id.clone(), false)
                }
                _ => (None, false),
            },
        };
        if let Some(id) = request {
            if ends {
                if let Some((tx, token)) = routes.requests.remove(&id) {
                    if let Some(token) = token {
                        routes.progress.remove(&token);
                    }
                    // The client may have gone; the reply then has nowhere to go.
                    let _ = tx.send(ServerSseMessage::from_message(message));
                    return Ok(());
                }
            } else if let Some((tx, _)) = routes.requests.get(&id) {
                let _ = tx.send(ServerSseMessage::from_message(message));
                return Ok(());
            }
        }
        routes.send_standalone(&self.id, message);
        Ok(())
    }
}

impl Routes {
    fn send_standalone(&mut self, session: &SessionId, message: ServerJsonRpcMessage) {
        let Some(tx) = &self.standalone else {
            tracing::debug!(%session, "no standalone stream open; server message not delivered");
            return;
        };
        if let Err(err) = tx.try_send(ServerSseMessage::from_message(message)) {
            match err {
                mpsc::error::TrySendError::Full(_) => tracing::warn!(
                    %session,
                    "the client does not read its standalone stream; server message dropped"
                ),
                mpsc::error::TrySendError::Closed(_) => self.standalone = None,
            }
        }
    }

    /// A GET stream: the first (or the one replacing a closed one) carries the session's
    /// messages; further ones while it is open only carry keep-alives, so two competing
    /// event sources cannot keep replacing each other.
    fn standalone(&mut self) -> mpsc::Receiver<ServerSseMessage> {
        if self.standalone.as_ref().is_none_or(|tx| tx.is_closed()) {
            let (tx, rx) = mpsc::channel(STANDALONE_BUFFER);
            self.standalone = Some(tx);
            return rx;
        }
        let (tx, rx) = mpsc::channel(1);
        self.shadows.retain(|tx| !tx.is_closed());
        if self.shadows.len() >= MAX_SHADOW_STREAMS {
            self.shadows.remove(0);
        }
        self.shadows.push(tx);
        rx
    }
}

/// The transport a session's service loop reads from and writes to.
pub struct SessionTransport {
    session: Arc<Session>,
    inbox: mpsc::Receiver<Box<ClientJsonRpcMessage>>,
    sessions: Weak<Inner>,
}

impl Transport<RoleServer> for SessionTransport {
    type Error = SessionError;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        // Delivered here, in the service loop's task: no hop through another task.
        if let Some(inner) = self.sessions.upgrade() {
            self.session.touch(inner.now_ms());
        }
        std::future::ready(self.session.deliver(item))
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        self.inbox.recv().await.map(|message| *message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbox.close();
        Ok(())
    }
}

impl SessionManager for Sessions {
    type Error = SessionError;
    type Transport = SessionTransport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.sweep_idle_sessions();
        let id: SessionId = uuid::Uuid::new_v4().simple().to_string().into();
        let (tx, rx) = mpsc::channel(INBOX);
        let session = Arc::new(Session {
            id: id.clone(),
            touched: AtomicU64::new(self.inner.now_ms()),
            routes: Mutex::new(Routes {
                inbox: Some(tx),
                ..Routes::default()
            }),
        });
        self.inner.write().insert(id.clone(), session.clone());
        let transport = SessionTransport {
            session,
            inbox: rx,
            sessions: Arc::downgrade(&self.inner),
        };
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let session = self.session(id)?;
        let mut replies = session.open_request_stream(&message);
        session.push(message).await?;
        while let Some(reply) = replies.recv().await {
            if let Some(message) = reply.message
                && matches!(
                    *message,
                    JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_)
                )
            {
                return Ok(Arc::unwrap_or_clone(message));
            }
        }
        Err(SessionError::Ended(id.clone()))
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.contains(id))
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.end(id);
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let session = self.session(id)?;
        let mut replies = session.open_request_stream(&message);
        session.push(message).await?;
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
            let mut routes = session.routes();
            if let Some((_, Some(token))) = routes.requests.remove(request) {
                routes.progress.remove(&token);
            }
        }
        session.push(message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let session = self.session(id)?;
        let mut rx = session.routes().standalone();
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    async fn resume(
        &self,
        id: &SessionId,
        _last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // Nothing is replayed (events carry no ids); the client gets the live stream.
        self.create_standalone_stream(id).await
    }
}

#[cfg(test)]
mod tests;
