//! The MCP methods of [`GatewayHandler`]: each resolves through the catalog view and
//! forwards with the helpers of the parent module.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest, CompleteRequestParams,
    CompleteResult, GetPromptRequestParams, GetPromptResponse, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, Reference, ResourceContents, ServerConfig,
    ServerResult, SetLevelRequest, SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams,
    SubscriptionFilter, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use switchboard_domain::tenancy::ItemKind;
use switchboard_domain::{ListKind, exposed_uri};

use super::{GatewayHandler, forwarded_meta, is_legacy, mark_complete, unexpected};
use crate::bridge::Outcome;
use crate::caller::Caller;
use crate::catalog::Route;
use crate::downstream::sessions::{HoldsState, StateProbe};
use crate::error::GatewayError;

impl ServerHandler for GatewayHandler {
    fn get_info(&self) -> ServerConfig {
        self.gateway.catalog.load().info.clone()
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Open the session's own upstream connections now, so its first list sees them.
        let Ok(caller) = self.caller(&context.extensions) else {
            return;
        };
        let _ = self.links(&context.peer, true, caller.tenant()).await;
        if let Some(probe) = context.extensions.get::<StateProbe>() {
            let slot: Weak<dyn HoldsState> = Arc::downgrade(&self.client) as _;
            probe.attach(slot);
        }
        self.client.register();
        self.gateway
            .hub
            .add_session(self.client.id, context.peer, caller.tenant().clone());
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        if let Some(Some(links)) = self.client.links.get() {
            links.notify_roots_changed().await;
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let catalog = self.view(&context).await;
        let (tools, next) = self.page(
            &caller,
            &catalog.tools,
            ListKind::Tools,
            ItemKind::Tool,
            request.as_ref(),
            |t| &t.name,
        )?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let unknown = || GatewayError::UnknownTool(request.name.to_string());
        let Some(route) = self
            .view(&context)
            .await
            .tools
            .route(&request.name)
            .cloned()
        else {
            return Err(self.unknown_tool(&caller, &request.name).await);
        };
        let admitted = self.authorize(
            &caller,
            &route,
            ItemKind::Tool,
            Some(
                request
                    .arguments
                    .as_ref()
                    .unwrap_or(&serde_json::Map::new()),
            ),
            &context,
            unknown,
        )?;
        let context = Self::traced(context, &admitted);
        // The server's per-tenant argument rules, before anything is charged.
        let rewrites = &self.upstream(&route).def().rewrites;
        let tenant = caller.tenant().as_str();
        if !rewrites.is_empty()
            && let Some(arguments) = request.arguments.as_mut()
            && let Err(message) = rewrites.rewrite_arguments(&route.name, tenant, arguments)
        {
            let refused = Err(ErrorData::invalid_params(message, None));
            return self.finish(&caller, &route, admitted, refused, false);
        }
        // Authorized first: a refused tool answers "unknown", never "rate limited".
        if let Some(gate) = self.gateway.call_gate() {
            let admitted_by_gate = gate.admit(&caller, &request.name).await;
            if let Err(err) = admitted_by_gate {
                return self.finish(&caller, &route, admitted, Err(err.into()), false);
            }
        }
        request.name = route.name.to_string().into();
        request.meta = forwarded_meta(&context.meta);
        let mut result = self
            .call_upstream_tool(&caller, &route, request, &context)
            .await;
        if let Ok(CallToolResponse::Complete(r)) = &mut result {
            for prefix in rewrites.result_prefixes(&route.name, tenant) {
                keep_tenant_items(r, &prefix);
            }
        }
        self.finish(&caller, &route, admitted, result, true)
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let catalog = self.view(&context).await;
        let (prompts, next) = self.page(
            &caller,
            &catalog.prompts,
            ListKind::Prompts,
            ItemKind::Prompt,
            request.as_ref(),
            |p| &p.name,
        )?;
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.next_cursor = next;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let unknown = || GatewayError::UnknownPrompt(request.name.clone());
        let route = self
            .view(&context)
            .await
            .prompts
            .route(&request.name)
            .cloned()
            .ok_or_else(unknown)?;
        let admitted =
            self.authorize(&caller, &route, ItemKind::Prompt, None, &context, unknown)?;
        let context = Self::traced(context, &admitted);
        request.name = route.name.to_string();
        request.meta = forwarded_meta(&context.meta);
        let result = match self.forward_rounds(&route, request, &context).await {
            Ok(ServerResult::GetPromptResult(mut r)) => {
                mark_complete(&mut r.result_type);
                Ok(GetPromptResponse::Complete(r))
            }
            Ok(ServerResult::InputRequiredResult(r)) => Ok(GetPromptResponse::InputRequired(r)),
            Ok(_) => Err(unexpected(self.upstream(&route).name(), "prompts/get")),
            Err(err) => Err(err),
        };
        self.finish(&caller, &route, admitted, result, true)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let catalog = self.view(&context).await;
        let (resources, next) = self.page(
            &caller,
            &catalog.resources,
            ListKind::Resources,
            ItemKind::Resource,
            request.as_ref(),
            |r| &r.uri,
        )?;
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let catalog = self.view(&context).await;
        let (templates, next) = self.page(
            &caller,
            &catalog.resource_templates,
            ListKind::ResourceTemplates,
            ItemKind::Resource,
            request.as_ref(),
            |t| &t.uri_template,
        )?;
        let mut result = ListResourceTemplatesResult::with_all_items(templates);
        result.next_cursor = next;
        Ok(result)
    }

    async fn read_resource(
        &self,
        mut request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let unknown = || GatewayError::UnknownResource(request.uri.clone());
        let route = self
            .view(&context)
            .await
            .route_uri(&request.uri)
            .ok_or_else(unknown)?;
        let admitted =
            self.authorize(&caller, &route, ItemKind::Resource, None, &context, unknown)?;
        let context = Self::traced(context, &admitted);
        request.uri = route.name.to_string();
        request.meta = forwarded_meta(&context.meta);
        let prefix = self.upstream(&route).def().prefix.clone();
        let result = match self.forward_rounds(&route, request, &context).await {
            Err(err) => Err(err),
            Ok(ServerResult::ReadResourceResult(mut r)) => {
                mark_complete(&mut r.result_type);
                for contents in r.contents.iter_mut() {
                    match contents {
                        ResourceContents::TextResourceContents { uri, .. }
                        | ResourceContents::BlobResourceContents { uri, .. } => {
                            *uri = exposed_uri(&prefix, uri);
                        }
                        _ => {}
                    }
                }
                Ok(ReadResourceResponse::Complete(r))
            }
            Ok(ServerResult::InputRequiredResult(r)) => Ok(ReadResourceResponse::InputRequired(r)),
            Ok(_) => Err(unexpected(self.upstream(&route).name(), "resources/read")),
        };
        self.finish(&caller, &route, admitted, result, true)
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let catalog = self.view(&context).await;
        let route = match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                let unknown = || GatewayError::UnknownPrompt(prompt.name.clone());
                let route = catalog
                    .prompts
                    .route(&prompt.name)
                    .cloned()
                    .ok_or_else(unknown)?;
                self.authorize(&caller, &route, ItemKind::Prompt, None, &context, unknown)?;
                prompt.name = route.name.to_string();
                route
            }
            Reference::Resource(resource) => {
                let unknown = || GatewayError::UnknownResource(resource.uri.clone());
                let route = catalog.route_template(&resource.uri).ok_or_else(unknown)?;
                self.authorize(&caller, &route, ItemKind::Resource, None, &context, unknown)?;
                resource.uri = route.name.to_string();
                route
            }
            _ => {
                return Err(ErrorData::invalid_params(
                    "unsupported completion reference type; use ref/prompt or ref/resource",
                    None,
                ));
            }
        };
        if self
            .upstream(&route)
            .status()
            .capabilities
            .as_ref()
            .is_none_or(|c| c.completions.is_none())
        {
            // The upstream offers no completions: an empty answer, as the spec allows.
            return Ok(CompleteResult::default());
        }
        request.meta = forwarded_meta(&context.meta);
        let upstream_request = ClientRequest::from(CompleteRequest::new(request));
        match self.forward(&route, upstream_request, &context).await? {
            ServerResult::CompleteResult(mut r) => {
                mark_complete(&mut r.result_type);
                Ok(r)
            }
            _ => Err(unexpected(
                self.upstream(&route).name(),
                "completion/complete",
            )),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Shared connections' log messages are not forwarded to clients (they could come
        // from anyone's call); the session's own connections filter at the upstream.
        if let Some(links) = self.links_for(&context).await {
            for (index, link) in links.iter() {
                let upstream = &self.gateway.upstreams[index];
                let set = ClientRequest::from(SetLevelRequest::new(request.clone()));
                if let Err(err) = upstream.request_on(&link.live, set).await {
                    tracing::debug!(server = upstream.name(), %err, "upstream refused logging/setLevel");
                }
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let unknown = || GatewayError::UnknownResource(request.uri.clone());
        let route = self
            .view(&context)
            .await
            .route_uri(&request.uri)
            .ok_or_else(unknown)?;
        self.authorize(&caller, &route, ItemKind::Resource, None, &context, unknown)?;
        let mut params = request.clone();
        params.uri = route.name.to_string();
        let upstream = self.target(&caller, &route).await?;
        let upstream_request = ClientRequest::from(SubscribeRequest::new(params));
        // A session-owned connection delivers its updates straight to this session.
        if let Some(links) = self.links_for(&context).await
            && let Some(link) = links.link(route.upstream)
        {
            return upstream
                .request_on(&link.live, upstream_request)
                .await
                .map(drop)
                .map_err(ErrorData::from);
        }
        // Shared connection: subscribe upstream once, fan updates out through the hub.
        self.client.register();
        self.client.subscribed.store(true, Ordering::Relaxed);
        if self
            .gateway
            .hub
            .subscribe_resource(self.client.id, upstream.tenant(), &request.uri)
            && let Err(err) = upstream.request_simple(upstream_request).await
        {
            self.gateway
                .hub
                .unsubscribe_resource(self.client.id, upstream.tenant(), &request.uri);
            return Err(err.into());
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let Some(route) = self.view(&context).await.route_uri(&request.uri) else {
            return Ok(());
        };
        let mut params = request.clone();
        params.uri = route.name.to_string();
        let upstream = self.target(&caller, &route).await?;
        let upstream_request = ClientRequest::from(UnsubscribeRequest::new(params));
        if let Some(links) = self.links_for(&context).await
            && let Some(link) = links.link(route.upstream)
        {
            return upstream
                .request_on(&link.live, upstream_request)
                .await
                .map(drop)
                .map_err(ErrorData::from);
        }
        if self
            .gateway
            .hub
            .unsubscribe_resource(self.client.id, upstream.tenant(), &request.uri)
        {
            let _ = upstream.request_simple(upstream_request).await;
        }
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.clone();
        // Resource update subscriptions of 2026-07-28 clients are not bridged to upstreams yet;
        // list-change notifications are.
        accepted.resource_subscriptions = None;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let caller = self.caller(&context.request_context().extensions)?;
        let id = self.gateway.hub.next_client_id();
        self.gateway
            .hub
            .add_listener(id, context.sink().clone(), caller.tenant().clone());
        context.cancelled().await;
        self.gateway.hub.remove_client(id);
        Ok(())
    }
}

/// Applies a `keep_prefix` result rule: text and structured content keep only the items
/// carrying `prefix` (stripped); embedded resources and links, which could name anything,
/// are dropped (fail closed).
fn keep_tenant_items(result: &mut rmcp::model::CallToolResult, prefix: &str) {
    use rmcp::model::ContentBlock;
    use switchboard_domain::rewrite::{filter_json, filter_text};
    result.content.retain_mut(|block| match block {
        ContentBlock::Text(t) => {
            t.text = filter_text(&t.text, prefix);
            true
        }
        ContentBlock::Image(_) | ContentBlock::Audio(_) => true,
        _ => false,
    });
    if let Some(structured) = result.structured_content.as_mut() {
        filter_json(structured, prefix);
    }
}

impl GatewayHandler {
    /// Sends an authorized `tools/call` upstream: through the 2026-07-28 bridge when the call
    /// needs a connection of its own, else on the live connection with `input_required`
    /// rounds.
    async fn call_upstream_tool(
        &self,
        caller: &Caller,
        route: &Route,
        mut request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let legacy = is_legacy(context);
        if !legacy
            && let Some(outcome) = self
                .bridge_call(caller, route, &mut request, context)
                .await?
        {
            return match outcome {
                Outcome::InputRequired(r) => Ok(CallToolResponse::InputRequired(r)),
                Outcome::Done(result) => match *result {
                    ServerResult::CallToolResult(mut r) => {
                        mark_complete(&mut r.result_type);
                        Ok(CallToolResponse::Complete(r))
                    }
                    _ => Err(unexpected(self.upstream(route).name(), "tools/call")),
                },
            };
        }
        match self.forward_rounds(route, request, context).await? {
            ServerResult::CallToolResult(mut r) => {
                mark_complete(&mut r.result_type);
                Ok(CallToolResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(unexpected(self.upstream(route).name(), "tools/call")),
        }
    }
}
