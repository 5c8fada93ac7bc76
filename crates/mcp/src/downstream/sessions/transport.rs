//! The transport a session's rmcp service loop reads from and writes to: its inbox in, and
//! delivery to the session's streams out, in the service loop's own task.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc;

use super::{Session, SessionError, millis_since};

/// The transport a session's service loop reads from and writes to.
pub struct SessionTransport {
    pub(super) session: Arc<Session>,
    pub(super) inbox: mpsc::Receiver<Box<ClientJsonRpcMessage>>,
    /// The manager's epoch, for the session's activity time.
    pub(super) epoch: Instant,
}

impl Transport<RoleServer> for SessionTransport {
    type Error = SessionError;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        // Delivered here, in the service loop's task: no hop through another task.
        self.session.touch(millis_since(self.epoch));
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
