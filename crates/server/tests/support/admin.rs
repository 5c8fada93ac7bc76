//! A client of the admin API for tests: every answer as status, headers and JSON body.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The operator token every admin test gateway is configured with.
pub const PLATFORM: &str = "platform-admin-token-for-tests-0123456789abcdef";

impl Api {
    /// A client of the gateway at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// The raw answer to one request: status and body text.
    pub async fn raw(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut request = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin API reachable");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Creates tenants `(id, owner)` as the platform administrator (the id doubles as name).
    pub async fn create_tenants(&self, list: &[(&str, &str)]) {
        for (id, owner) in list {
            let body = serde_json::json!({"id": id, "name": id, "owner": owner});
            let made = self
                .send(Some(PLATFORM), Method::POST, "/tenants", Some(body))
                .await;
            assert_eq!(made.status, 201, "{}", made.body);
        }
    }

    /// An API key for `user` of `tenant`, made by the platform administrator.
    pub async fn user_key(&self, tenant: &str, user: &str) -> String {
        let body = serde_json::json!({"name": "k", "owner": {"type": "user", "id": user}});
        let path = format!("/tenants/{tenant}/api-keys");
        let made = self
            .send(Some(PLATFORM), Method::POST, &path, Some(body))
            .await;
        assert_eq!(made.status, 201, "{}", made.body);
        made.body["secret"].as_str().expect("a secret").to_owned()
    }
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    pub async fn send(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.send_with(token, method, path, body, &[]).await
    }

    pub async fn send_with(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin API reachable");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }
}

pub fn code(answer: &Answer) -> &str {
    answer.body["error"]["code"].as_str().unwrap_or("")
}

/// Sets a secret through the admin API (`path`: `/tenants/{t}/secrets/NAME` or
/// `/me/secrets/NAME`), asserting success.
pub async fn set_secret(api: &Api, token: &str, path: &str, value: &str) {
    let set = api
        .send(
            Some(token),
            Method::PUT,
            path,
            Some(serde_json::json!({"value": value})),
        )
        .await;
    assert!(set.status.is_success(), "{} {}", set.status, set.body);
}
