//! Real MCP over Streamable HTTP for the load generator: a legacy session (initialize +
//! `Mcp-Session-Id`) or stateless 2026-07-28 requests, with bodies built once per worker —
//! or a shared stdio connection (see [`crate::stdio`]).

use std::sync::Arc;

use crate::stdio::StdioPeer;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Protocol era of a load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Era {
    #[serde(rename = "2025-11-25")]
    Legacy,
    #[serde(rename = "2026-07-28")]
    Modern,
}

impl Era {
    pub fn label(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "2026-07-28",
        }
    }
}

const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";

/// One client connection speaking MCP to `url`.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    bearer: Option<String>,
    era: Era,
    session: Option<String>,
    stdio: Option<Arc<StdioPeer>>,
}

/// Where load goes: an MCP URL and the credential to present there, or a stdio connection.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub bearer: Option<String>,
    pub stdio: Option<Arc<StdioPeer>>,
}

impl Endpoint {
    /// An endpoint without credential.
    pub fn open(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bearer: None,
            stdio: None,
        }
    }

    /// A stdio server every worker reaches over the same connection.
    pub fn stdio(peer: Arc<StdioPeer>) -> Self {
        Self {
            url: "stdio".into(),
            bearer: None,
            stdio: Some(peer),
        }
    }
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "switchboard-bench", "version": "1"}
    })
}

/// Extracts the JSON-RPC message from a JSON or SSE response body.
fn message(body: &str) -> anyhow::Result<Value> {
    let text = body.trim_start();
    if text.starts_with('{') {
        return Ok(serde_json::from_str(text)?);
    }
    for line in body.lines() {
        if let Some(data) = line.strip_prefix("data:") {
            let data = data.trim();
            if data.starts_with('{') {
                let v: Value = serde_json::from_str(data)?;
                if v.get("id").is_some() {
                    return Ok(v);
                }
            }
        }
    }
    bail!(
        "no JSON-RPC response in body: {}",
        &body[..body.len().min(200)]
    )
}

impl McpClient {
    /// Connects; a legacy client performs the initialize handshake.
    pub async fn connect(
        http: reqwest::Client,
        endpoint: &Endpoint,
        era: Era,
    ) -> anyhow::Result<McpClient> {
        let mut client = McpClient {
            http,
            url: endpoint.url.clone(),
            bearer: endpoint.bearer.clone(),
            era,
            session: None,
            stdio: endpoint.stdio.clone(),
        };
        if era == Era::Legacy && client.stdio.is_none() {
            let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": LEGACY, "capabilities": {},
                "clientInfo": {"name": "switchboard-bench", "version": "1"}}});
            let response = client.post(&init, None).await?;
            let session = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .context("initialize returned no Mcp-Session-Id")?;
            let body = response.text().await?;
            message(&body)?.get("result").context("initialize failed")?;
            client.session = Some(session);
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            client.post(&initialized, None).await?;
        }
        Ok(client)
    }

    async fn post(&self, body: &Value, name: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(bearer) = &self.bearer {
            request = request.bearer_auth(bearer);
        }
        match self.era {
            Era::Legacy => {
                request = request.header("mcp-protocol-version", LEGACY);
                if let Some(session) = &self.session {
                    request = request.header("mcp-session-id", session);
                }
            }
            Era::Modern => {
                request = request.header("mcp-protocol-version", MODERN);
                if let Some(method) = body.get("method").and_then(Value::as_str) {
                    request = request.header("mcp-method", method);
                }
                if let Some(name) = name {
                    request = request.header("mcp-name", name);
                }
            }
        }
        let response = request.body(body.to_string()).send().await?;
        if !response.status().is_success() {
            bail!("HTTP {}", response.status());
        }
        Ok(response)
    }

    /// A request body for `method` with `params` (the era's `_meta` added).
    pub fn body(&self, id: u64, method: &str, mut params: Value) -> Value {
        if self.era == Era::Modern {
            params["_meta"] = meta();
        }
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    /// Ends a legacy session (`DELETE` with its id), so the gateway frees it now rather than
    /// when it idles out; nothing to do for stateless or stdio clients.
    pub async fn close(self) {
        let Some(session) = &self.session else {
            return;
        };
        let mut request = self
            .http
            .delete(&self.url)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", LEGACY);
        if let Some(bearer) = &self.bearer {
            request = request.bearer_auth(bearer);
        }
        // Best effort: a session the gateway already dropped needs no closing.
        let _ = request.send().await;
    }

    /// Sends one request and checks that it got a result (not an error).
    pub async fn request(&self, body: &Value, name: Option<&str>) -> anyhow::Result<Value> {
        if let Some(peer) = &self.stdio {
            let method = body["method"].as_str().unwrap_or_default();
            return peer.request(method, body["params"].clone()).await;
        }
        let response = self.post(body, name).await?;
        let text = response.text().await?;
        let message = message(&text)?;
        if let Some(error) = message.get("error") {
            bail!("JSON-RPC error: {error}");
        }
        message
            .get("result")
            .cloned()
            .context("response without result")
    }
}

/// Closes many clients, a few at a time.
pub async fn close_all(clients: impl IntoIterator<Item = McpClient>) {
    use futures::StreamExt;
    futures::stream::iter(clients)
        .for_each_concurrent(16, McpClient::close)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_sse_bodies() {
        assert_eq!(message(r#"{"id":1,"result":{}}"#).unwrap()["id"], 1);
        let sse =
            "id: 0\nretry: 3000\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
        assert_eq!(message(sse).unwrap()["id"], 2);
        assert!(message("data: nothing\n\n").is_err());
    }
}
