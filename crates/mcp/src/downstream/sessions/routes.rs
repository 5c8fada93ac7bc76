//! Where a session's messages go: the streams of its open requests, its GET stream, and
//! what waits for a GET stream.

use std::collections::{HashMap, VecDeque};

use rmcp::model::{
    GetExtensions, JsonRpcMessage, ProgressToken, RequestId, ServerJsonRpcMessage,
    ServerNotification,
};
use rmcp::service::OriginatingRequestId;
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use tokio::sync::mpsc;

use super::{
    BACKLOG, ClientJsonRpcMessage, MAX_SHADOW_STREAMS, STREAM_BUFFER, Session, SessionError,
};

#[derive(Default)]
pub(super) struct Routes {
    /// `None` once the session is closed: the service loop then reads its last messages and
    /// ends.
    pub(super) inbox: Option<mpsc::Sender<Box<ClientJsonRpcMessage>>>,
    /// The open POST streams by the JSON-RPC id of the request they answer, with the
    /// request's progress token.
    pub(super) requests:
        HashMap<RequestId, (mpsc::Sender<ServerSseMessage>, Option<ProgressToken>)>,
    pub(super) progress: HashMap<ProgressToken, RequestId>,
    /// The GET stream: notifications and requests tied to no open POST.
    pub(super) standalone: Option<mpsc::Sender<ServerSseMessage>>,
    /// Further GET streams, newest last: keep-alives only, until the standalone one closes.
    pub(super) shadows: Vec<mpsc::Sender<ServerSseMessage>>,
    /// Messages sent while no GET stream was open, for the next one.
    pub(super) backlog: VecDeque<ServerSseMessage>,
}

impl Session {
    /// Delivers one message of the service loop: a reply to its request's stream (which
    /// then ends), progress and requests tied to an open request to that request's stream,
    /// everything else to the standalone stream. A request to the client that no open
    /// stream can carry is an error, so the caller waiting for its answer fails at once.
    pub(super) fn deliver(&self, message: ServerJsonRpcMessage) -> Result<(), SessionError> {
        let mut routes = self.routes();
        if routes.inbox.is_none() {
            return Err(SessionError::Ended(self.id.clone()));
        }
        let asks = matches!(message, JsonRpcMessage::Request(_));
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
                if let Some(tx) = routes.forget(&id) {
                    let reply = ServerSseMessage::from_message(message);
                    if let Err(mpsc::error::TrySendError::Full(reply)) = tx.try_send(reply) {
                        // A slow reader: the reply waits for room (one task per such call).
                        tokio::spawn(async move { tx.send(reply).await });
                    }
                    // Closed: the client went away; the reply has nowhere to go.
                    return Ok(());
                }
            } else if let Some((tx, _)) = routes.requests.get(&id) {
                return match tx.try_send(ServerSseMessage::from_message(message)) {
                    Ok(()) => Ok(()),
                    Err(_) if asks => Err(SessionError::Undeliverable(self.id.clone())),
                    Err(_) => {
                        tracing::debug!(session = %self.id, tenant = self.tenant(), request = %id, "the client does not read its call's stream; notification dropped");
                        Ok(())
                    }
                };
            }
        }
        routes.send_standalone(self, message, asks)
    }
}

impl Routes {
    /// Forgets the route of request `id` (and its progress token); returns its stream.
    pub(super) fn forget(&mut self, id: &RequestId) -> Option<mpsc::Sender<ServerSseMessage>> {
        let (tx, token) = self.requests.remove(id)?;
        if let Some(token) = token
            && self.progress.get(&token) == Some(id)
        {
            self.progress.remove(&token);
        }
        Some(tx)
    }

    /// The open standalone stream, promoting the newest open shadow when it has closed.
    pub(super) fn open_standalone(&mut self) -> Option<&mpsc::Sender<ServerSseMessage>> {
        if self.standalone.as_ref().is_none_or(|tx| tx.is_closed()) {
            self.shadows.retain(|tx| !tx.is_closed());
            self.standalone = self.shadows.pop();
        }
        self.standalone.as_ref()
    }

    pub(super) fn send_standalone(
        &mut self,
        session: &Session,
        message: ServerJsonRpcMessage,
        asks: bool,
    ) -> Result<(), SessionError> {
        let event = ServerSseMessage::from_message(message);
        let event = match self.open_standalone() {
            Some(tx) => match tx.try_send(event) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(session = %session.id, tenant = session.tenant(), "the client does not read its standalone stream; server message dropped");
                    return if asks {
                        Err(SessionError::Undeliverable(session.id.clone()))
                    } else {
                        Ok(())
                    };
                }
                Err(mpsc::error::TrySendError::Closed(event)) => event,
            },
            None => event,
        };
        // Clients open their GET stream after the handshake; what the server sends before
        // (an upstream asking for roots as soon as it is initialized) waits for it.
        if self.backlog.len() >= BACKLOG {
            self.backlog.pop_front();
            tracing::warn!(session = %session.id, tenant = session.tenant(), "no standalone stream open for a while; oldest waiting message dropped");
        }
        self.backlog.push_back(event);
        Ok(())
    }

    /// A GET stream. The first (or one replacing a closed one, or a reconnection) carries
    /// the session's messages, starting with those that waited for it; further ones while
    /// it is open only carry keep-alives until it closes, so two competing event sources
    /// cannot keep replacing each other.
    pub(super) fn standalone(&mut self, reconnection: bool) -> mpsc::Receiver<ServerSseMessage> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        if !reconnection && self.open_standalone().is_some() {
            if self.shadows.len() >= MAX_SHADOW_STREAMS {
                self.shadows.remove(0);
            }
            self.shadows.push(tx);
            return rx;
        }
        // BACKLOG < STREAM_BUFFER: they all fit.
        for event in self.backlog.drain(..) {
            let _ = tx.try_send(event);
        }
        self.standalone = Some(tx);
        rx
    }
}
