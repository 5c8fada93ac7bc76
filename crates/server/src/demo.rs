//! The built-in demo upstream: `switchboard demo-upstream` (stdio) or `--http ADDR`.
//!
//! It exists so that the zero-setup demo needs nothing installed: the gateway starts the same
//! binary as a stdio child. It also serves as the fast in-repository upstream of the tests and
//! the benchmark. It offers a few tools (one that reports progress and honours cancellation),
//! a prompt with completions, a resource and a resource template.

// Sampling is deprecated by SEP-2577 but real clients still speak it; the demo exercises it.
#![allow(deprecated)]

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
    CompleteResult, CompletionInfo, ContentBlock, CreateMessageRequest, CreateMessageRequestParams,
    CreateMessageResult, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    Implementation, InputRequest, InputRequests, InputRequiredResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference, Resource,
    ResourceContents, ResourceTemplate, Role, SamplingContent, SamplingMessage,
    SamplingMessageContentBlock, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
    ToolsCapability,
};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, RoleServer, SubscriptionContext, SubscriptionSink,
};
use serde_json::{Map, Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The demo upstream's handler. Clones share state, so one HTTP server's sessions see the
/// same tool list.
#[derive(Clone, Default)]
pub struct DemoServer {
    state: Arc<DemoState>,
    /// Speak only the session protocols (up to 2025-11-25), like many deployed servers.
    legacy_only: bool,
    /// Environment variables the `env` tool shows (none: no `env` tool). Shows what a
    /// gateway hands a stdio upstream, e.g. a tenant's secret.
    env_tool: Arc<Vec<String>>,
    /// `filler_01`… tools (echoes) listed besides the demo's own, for list benchmarks;
    /// built once, as a server with a fixed list would.
    fillers: Arc<Vec<Tool>>,
}

/// State shared by all sessions of one demo upstream.
#[derive(Default)]
struct DemoState {
    /// Whether the `extra` tool is listed (flipped by `toggle_extra`).
    extra: AtomicBool,
    /// Legacy sessions and 2026-07-28 listen streams to tell about list changes.
    peers: Mutex<Vec<Peer<RoleServer>>>,
    listeners: Mutex<Vec<SubscriptionSink>>,
}

impl DemoServer {
    /// A demo upstream that refuses 2026-07-28 (tests the gateway's bridging to legacy
    /// upstreams).
    pub fn legacy_only() -> Self {
        Self {
            legacy_only: true,
            ..Self::default()
        }
    }

    /// Lists at least `count` tools: the demo's own, then `filler_01`… (each an echo).
    pub fn with_tool_count(mut self, count: usize) -> Self {
        let fillers = count.saturating_sub(tools().len());
        self.fillers = Arc::new(
            (1..=fillers)
                .map(|i| {
                    Tool::new(
                        format!("filler_{i:02}"),
                        "Returns the text it is given (a filler for list benchmarks).",
                        schema(
                            json!({"type": "object", "properties": {"text": {"type": "string"}}}),
                        ),
                    )
                })
                .collect(),
        );
        self
    }

    /// Adds an `env` tool that shows these environment variables (and no others).
    pub fn with_env_tool(mut self, names: Vec<String>) -> Self {
        self.env_tool = Arc::new(names);
        self
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools = tools();
        tools.extend(self.fillers.iter().cloned());
        if !self.env_tool.is_empty() {
            tools.push(Tool::new(
                "env",
                "Shows the environment variables this upstream was started to show.",
                schema(json!({"type": "object"})),
            ));
        }
        if self.state.extra.load(Ordering::Acquire) {
            tools.push(Tool::new(
                "extra",
                "Appears and disappears with toggle_extra.",
                schema(json!({"type": "object"})),
            ));
        }
        tools
    }

    /// Flips the `extra` tool and tells every session and listener.
    async fn toggle_extra(&self) -> bool {
        let now = !self.state.extra.fetch_xor(true, Ordering::AcqRel);
        let peers: Vec<_> = self
            .state
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for peer in peers {
            let _ = peer.notify_tool_list_changed().await;
        }
        let listeners: Vec<_> = self
            .state
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for sink in listeners {
            let _ = sink.notify_tool_list_changed().await;
        }
        now
    }
}

fn schema(value: Value) -> Arc<Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(Map::new()),
    }
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "echo",
            "Returns the text it is given.",
            schema(
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            ),
        ),
        Tool::new(
            "add",
            "Adds two numbers.",
            schema(
                json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
            ),
        ),
        Tool::new(
            "sample",
            "Asks the client's model to answer `prompt` (sampling) and returns its answer.",
            schema(
                json!({"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}),
            ),
        ),
        Tool::new(
            "toggle_extra",
            "Adds or removes the tool `extra` and announces the list change.",
            schema(json!({"type": "object"})),
        ),
        Tool::new(
            "slow_count",
            "Counts to `steps`, waiting `delay_ms` between steps and reporting progress; can be cancelled.",
            schema(
                json!({"type": "object", "properties": {"steps": {"type": "integer", "minimum": 1, "maximum": 1000}, "delay_ms": {"type": "integer", "minimum": 0, "maximum": 10000}}, "required": ["steps"]}),
            ),
        ),
    ]
}

fn argument<'a>(args: &'a Option<Map<String, Value>>, name: &str) -> Result<&'a Value, ErrorData> {
    args.as_ref()
        .and_then(|a| a.get(name))
        .ok_or_else(|| ErrorData::invalid_params(format!("missing argument {name:?}"), None))
}

fn number(args: &Option<Map<String, Value>>, name: &str) -> Result<f64, ErrorData> {
    argument(args, name)?.as_f64().ok_or_else(|| {
        ErrorData::invalid_params(format!("argument {name:?} must be a number"), None)
    })
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

fn sampled_text(result: &CreateMessageResult) -> String {
    match &result.message.content {
        SamplingContent::Single(SamplingMessageContentBlock::Text(t)) => t.text.clone(),
        _ => "(no text)".to_owned(),
    }
}

/// `sample`: a legacy session asks its client directly; a 2026-07-28 request gets an
/// `input_required` result and is answered when retried with the client's response.
async fn sample(
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let prompt = argument(&request.arguments, "prompt")?
        .as_str()
        .ok_or_else(|| ErrorData::invalid_params("argument \"prompt\" must be a string", None))?
        .to_owned();
    if let Some(answer) = request
        .input_responses
        .as_ref()
        .and_then(|r| r.get("sample"))
    {
        let result: CreateMessageResult = serde_json::from_value(answer.clone()).map_err(|e| {
            ErrorData::invalid_params(
                format!("input response \"sample\" is not a sampling result: {e}"),
                None,
            )
        })?;
        return Ok(CallToolResponse::Complete(text(format!(
            "client said: {}",
            sampled_text(&result)
        ))));
    }
    let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    if context.meta.protocol_version().is_some() {
        let mut requests = InputRequests::new();
        requests.insert(
            "sample".to_owned(),
            InputRequest::CreateMessage(CreateMessageRequest::new(params)),
        );
        return Ok(CallToolResponse::InputRequired(
            InputRequiredResult::from_input_requests(requests),
        ));
    }
    let result = context
        .peer
        .create_message(params)
        .await
        .map_err(|e| match e {
            rmcp::ServiceError::McpError(e) => e,
            other => ErrorData::internal_error(format!("sampling failed: {other}"), None),
        })?;
    Ok(CallToolResponse::Complete(text(format!(
        "client said: {}",
        sampled_text(&result)
    ))))
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        let mut caps = ServerCapabilities::default();
        let mut tools_cap = ToolsCapability::default();
        tools_cap.list_changed = Some(true);
        caps.tools = Some(tools_cap);
        caps.prompts = Some(Default::default());
        caps.resources = Some(Default::default());
        caps.completions = Some(Default::default());
        let mut info = ServerConfig::new(caps);
        let mut implementation = Implementation::default();
        implementation.name = "switchboard-demo".into();
        implementation.version = env!("CARGO_PKG_VERSION").into();
        info.server_info = implementation;
        info
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.legacy_only {
            let legacy = ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .filter(|v| v.as_str() < ProtocolVersion::V_2026_07_28.as_str())
                .cloned()
                .collect::<Vec<_>>();
            Cow::Owned(legacy)
        } else {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.state
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.state
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(context.sink().clone());
        context.cancelled().await;
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = &request.arguments;
        let result = match request.name.as_ref() {
            "env" if !self.env_tool.is_empty() => {
                let shown: Map<String, Value> = self
                    .env_tool
                    .iter()
                    .map(|name| {
                        let value = std::env::var(name).map_or(Value::Null, Value::String);
                        (name.clone(), value)
                    })
                    .collect();
                text(Value::Object(shown).to_string())
            }
            name if name
                .strip_prefix("filler_")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| (1..=self.fillers.len()).contains(&n)) =>
            {
                text(name)
            }
            "echo" => {
                let value = argument(args, "text")?;
                let s = value.as_str().ok_or_else(|| {
                    ErrorData::invalid_params("argument \"text\" must be a string", None)
                })?;
                text(s)
            }
            "add" => {
                let sum = number(args, "a")? + number(args, "b")?;
                text(sum.to_string())
            }
            "sample" => return sample(&request, &context).await,
            "toggle_extra" => {
                let listed = self.toggle_extra().await;
                text(if listed {
                    "extra is listed"
                } else {
                    "extra is not listed"
                })
            }
            "extra" if self.state.extra.load(Ordering::Acquire) => text("extra tool"),
            "slow_count" => {
                let steps = number(args, "steps")?.clamp(1.0, 1000.0) as u32;
                let delay = args
                    .as_ref()
                    .and_then(|a| a.get("delay_ms"))
                    .and_then(Value::as_u64)
                    .unwrap_or(10)
                    .min(10_000);
                let token = context.meta.get_progress_token();
                for step in 1..=steps {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                        _ = context.ct.cancelled() => {
                            return Err(ErrorData::internal_error("cancelled", None));
                        }
                    }
                    if let Some(token) = &token {
                        let mut progress =
                            ProgressNotificationParam::new(token.clone(), f64::from(step));
                        progress.total = Some(f64::from(steps));
                        progress.message = Some(format!("step {step} of {steps}"));
                        let _ = context.peer.notify_progress(progress).await;
                    }
                }
                text(format!("counted to {steps}"))
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other:?}"),
                    None,
                ));
            }
        };
        Ok(CallToolResponse::Complete(result))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "greeting",
            Some("A friendly greeting for someone."),
            Some(vec![
                PromptArgument::new("name")
                    .with_description("Who to greet")
                    .with_required(true),
            ]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greeting" {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt {:?}", request.name),
                None,
            ));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("friend")
            .to_owned();
        Ok(GetPromptResponse::Complete(GetPromptResult::new(vec![
            PromptMessage::new_text(Role::User, format!("Say hello to {name} in one sentence.")),
        ])))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let ArgumentInfo { name, value, .. } = &request.argument;
        let is_greeting = matches!(&request.r#ref, Reference::Prompt(p) if p.name == "greeting");
        let values: Vec<String> = if is_greeting && name == "name" {
            ["Ada", "Alan", "Grace", "Linus"]
                .iter()
                .filter(|n| n.to_lowercase().starts_with(&value.to_lowercase()))
                .map(|n| n.to_string())
                .collect()
        } else {
            Vec::new()
        };
        let info = CompletionInfo::new(values)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(CompleteResult::new(info))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new("demo://readme", "readme")
                .with_description("What this demo upstream offers."),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("demo://notes/{id}", "note").with_description("A numbered note."),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let body = if request.uri == "demo://readme" {
            "Switchboard demo upstream: tools echo, add, sample, slow_count; prompt greeting; notes at demo://notes/{id}.".to_owned()
        } else if let Some(id) = request.uri.strip_prefix("demo://notes/") {
            format!("Note {id}")
        } else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {:?}", request.uri),
                None,
            ));
        };
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![ResourceContents::text(body, request.uri)],
        )))
    }
}
