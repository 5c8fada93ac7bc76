//! The client side of an upstream connection: what Switchboard answers when an upstream
//! talks to it, and where upstream notifications go.

use std::sync::Weak;

use rmcp::ErrorData;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ErrorCode, Implementation, ListRootsResult,
    LoggingMessageNotificationParam, ProgressNotificationParam, ResourceUpdatedNotificationParam,
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
    fn cannot_bridge(&self, what: &str) -> ErrorData {
        ErrorData::new(
            ErrorCode(codes::CANNOT_BRIDGE),
            format!(
                "{what} from upstream {:?} cannot be routed to a client: its connection is shared \
                 by all clients; set isolation = \"per-session\" on this upstream",
                self.server
            ),
            None,
        )
    }

    fn mark_changed(&self, wanted: Wanted) {
        if let Some(upstream) = self.upstream.upgrade() {
            upstream.request_refresh(wanted);
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
        Err(self.cannot_bridge("a sampling request"))
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Err(self.cannot_bridge("an elicitation request"))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Err(self.cannot_bridge("a roots/list request"))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(upstream) = self.upstream.upgrade() {
            upstream.hub.forward_progress(self.connection, params).await;
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // A shared connection's log message cannot be attributed to one client, and handing
        // it to every client would leak one client's activity to the others: it goes to the
        // gateway's log only. Upstreams with `isolation = "per-session"` log to their client.
        tracing::debug!(server = %self.server, level = ?params.level, data = %params.data, "upstream log message");
    }

    async fn on_resource_updated(
        &self,
        mut params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(upstream) = self.upstream.upgrade() {
            params.uri = switchboard_domain::exposed_uri(&upstream.def.prefix, &params.uri);
            upstream
                .hub
                .forward_resource_updated(params, upstream.tenant())
                .await;
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.mark_changed(Wanted {
            resources: true,
            ..Wanted::default()
        });
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.mark_changed(Wanted {
            tools: true,
            ..Wanted::default()
        });
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.mark_changed(Wanted {
            prompts: true,
            ..Wanted::default()
        });
    }
}
