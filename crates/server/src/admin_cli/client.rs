//! A small client of the admin API: escaped paths, the bearer credential, errors in the
//! API's shape turned into one line, lists followed to their last page.

use anyhow::{Context, bail};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::Connection;

/// One admin API client.
pub(super) struct Api {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Api {
    pub(super) fn new(connection: &Connection) -> anyhow::Result<Self> {
        let token = connection.token.clone().context(
            "no credential: set SWITCHBOARD_ADMIN_TOKEN or pass --token (a platform admin token, or a tenant admin's API key)",
        )?;
        let base = Url::parse(&connection.url)
            .with_context(|| format!("--url {:?} is not a URL", connection.url))?;
        Ok(Self {
            http: reqwest::Client::new(),
            base,
            token,
        })
    }

    /// `/admin/v1/<segments…>`, each segment escaped.
    pub(super) fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--url cannot be a base URL"))?
            .pop_if_empty()
            .extend(["admin", "v1"])
            .extend(segments);
        Ok(url)
    }

    pub(super) async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    let e = v.get("error")?;
                    let message = e.get("message")?.as_str()?.to_owned();
                    Some(match e.get("field").and_then(Value::as_str) {
                        Some(field) => format!("{message} (field {field})"),
                        None => message,
                    })
                })
                .unwrap_or(text);
            bail!(
                "{} {}: {message}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("the answer is not JSON")
    }

    /// A non-JSON answer (CSV) as text.
    pub(super) async fn text(&self, url: Url) -> anyhow::Result<String> {
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "{} {}: {text}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
        }
        Ok(text)
    }

    pub(super) async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.call(method, self.url(segments)?, body).await
    }

    /// Every page of a list.
    pub(super) async fn list(
        &self,
        segments: &[&str],
        query: &[(&str, Option<&String>)],
    ) -> anyhow::Result<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(segments)?;
            {
                let mut pairs = url.query_pairs_mut();
                for (key, value) in query {
                    if let Some(value) = value {
                        pairs.append_pair(key, value);
                    }
                }
                if let Some(cursor) = &cursor {
                    pairs.append_pair("cursor", cursor);
                }
            }
            let page = self.call(Method::GET, url, None).await?;
            if let Some(page_items) = page.get("items").and_then(Value::as_array) {
                items.extend(page_items.iter().cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(json!({ "items": items }))
    }
}
