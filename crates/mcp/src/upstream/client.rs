//! The client side of an upstream connection: what Switchboard answers when an upstream
//! talks to it, and where upstream notifications go.

use std::sync::{Arc, Weak};

use rmcp::ErrorData;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientResult, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorCode, Implementation,
    ListRootsResult, LoggingMessageNotification, LoggingMessageNotificationParam,
    ProgressNotification, ProgressNotificationParam, PromptListChangedNotification,
    ResourceListChangedNotification, ResourceUpdatedNotification, ResourceUpdatedNotificationParam,
    ServerNotification, ServerRequest, ToolListChangedNotification,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};

use super::Upstream;
use super::lists::Wanted;
use crate::error::codes;

/// Handles messages an upstream sends on one connection that all clients share.
#[derive(Clone)]
pub struct SharedClient {
    pub(super) upstream: Weak<Upstream>,
    pub(super) connection: u64,
    pub(super) server: String,
}

impl SharedClient {
    fn upstream(&self) -> Option<Arc<Upstream>> {
        self.upstream.upgrade()
    }
}

const SAMPLING: &str = "a sampling request";
const ELICITATION: &str = "an elicitation request";
const ROOTS: &str = "a roots/list request";

/// Why a request from an upstream cannot be answered on a shared connection.
fn cannot_bridge(server: &str, what: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode(codes::CANNOT_BRIDGE),
        format!(
            "{what} from upstream {server:?} cannot be routed to a client: its connection is \
             shared by all clients; set isolation = \"per-session\" on this upstream"
        ),
        None,
    )
}

impl Upstream {
    /// What the gateway answers when an upstream asks something on a shared connection
    /// (rmcp's handler below, and the direct path of [`super::direct`]).
    pub(super) fn answer_shared(&self, request: &ServerRequest) -> Result<ClientResult, ErrorData> {
        let what = match request {
            ServerRequest::PingRequest(_) => return Ok(ClientResult::empty(())),
            ServerRequest::CreateMessageRequest(_) => SAMPLING,
            ServerRequest::ElicitRequest(_) => ELICITATION,
            ServerRequest::ListRootsRequest(_) => ROOTS,
            _ => {
                return Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    "the gateway does not answer this method on a shared connection",
                    None,
                ));
            }
        };
        Err(cannot_bridge(self.name(), what))
    }

    /// Where a notification from a shared connection goes.
    pub(super) async fn on_shared_notification(
        &self,
        connection: u64,
        notification: ServerNotification,
    ) {
        match notification {
            ServerNotification::ProgressNotification(n) => {
                self.hub.forward_progress(connection, n.params).await;
            }
            ServerNotification::LoggingMessageNotification(n) => {
                // A shared connection's log message cannot be attributed to one client, and
                // handing it to every client would leak one client's activity to the others:
                // it goes to the gateway's log only. Upstreams with `isolation =
                // "per-session"` log to their client.
                let params = n.params;
                tracing::debug!(server = self.name(), level = ?params.level, data = %params.data, "upstream log message");
            }
            ServerNotification::ResourceUpdatedNotification(n) => {
                let mut params = n.params;
                params.uri = switchboard_domain::exposed_uri(&self.def.prefix, &params.uri);
                self.hub
                    .forward_resource_updated(params, self.tenant())
                    .await;
            }
            ServerNotification::ResourceListChangedNotification(_) => {
                self.request_refresh(Wanted {
                    resources: true,
                    ..Wanted::default()
                });
            }
            ServerNotification::ToolListChangedNotification(_) => {
                self.request_refresh(Wanted {
                    tools: true,
                    ..Wanted::default()
                });
            }
            ServerNotification::PromptListChangedNotification(_) => {
                self.request_refresh(Wanted {
                    prompts: true,
                    ..Wanted::default()
                });
            }
            _ => {
                tracing::debug!(
                    server = self.name(),
                    "upstream notification ignored on a shared connection"
                );
            }
        }
    }
}

/// The identity Switchboard presents to upstreams.
pub fn client_info() -> ClientConfig {
    let mut implementation = Implementation::default();
    implementation.name = "switchboard".into();
    implementation.title = Some("Switchboard MCP gateway".into());
    implementation.version = env!("CARGO_PKG_VERSION").into();
    ClientConfig::new(ClientCapabilities::default(), implementation)
}

impl ClientHandler for SharedClient {
    fn get_info(&self) -> ClientConfig {
        client_info()
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Err(cannot_bridge(&self.server, SAMPLING))
    }

    async fn create_elicitation(
        &self,
        _params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Err(cannot_bridge(&self.server, ELICITATION))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Err(cannot_bridge(&self.server, ROOTS))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.notified(ProgressNotification::new(params).into())
            .await;
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.notified(LoggingMessageNotification::new(params).into())
            .await;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.notified(ResourceUpdatedNotification::new(params).into())
            .await;
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.notified(ResourceListChangedNotification::default().into())
            .await;
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.notified(ToolListChangedNotification::default().into())
            .await;
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.notified(PromptListChangedNotification::default().into())
            .await;
    }
}

impl SharedClient {
    async fn notified(&self, notification: ServerNotification) {
        if let Some(upstream) = self.upstream() {
            upstream
                .on_shared_notification(self.connection, notification)
                .await;
        }
    }
}
