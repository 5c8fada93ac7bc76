//! Credentials end to end through the running gateway: bearer JWTs from a tenant's trusted
//! issuer, the OAuth client-credentials grant at `/oauth/token`, user tokens from the
//! `switchboard token` CLI (issue, use, inspect, revoke), and open mode without tenants.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretBox;
use serde_json::json;
use support::tenancy::{Backend, HASHING_SECRET, TestDb, provision, tenant, user};
use support::{Era, TestGateway, connect, connect_as, stdio_demo, tool_names, try_connect};
use switchboard_auth::api_key::HashingKey;
use switchboard_auth::generate_signing_key;
use switchboard_domain::tenancy::{ClientId, IssuerConfig, Role, ServiceClient};

/// An `application/x-www-form-urlencoded` body (values here need no escaping but `/`).
fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn trusted_issuer_tokens_and_client_credentials() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    provision(&store).await;
    let (kid, pkcs8, jwk) = generate_signing_key().unwrap();
    let acme = store.tenant(&tenant("acme"));
    acme.put_issuer(&IssuerConfig {
        tenant: tenant("acme"),
        issuer: "https://idp.acme.test".into(),
        jwks_url: None,
        jwks: Some(
            json!({"keys": [serde_json::from_str::<serde_json::Value>(&jwk).unwrap()]}).to_string(),
        ),
        audiences: vec![],
        claims: Default::default(),
        required_scopes: vec!["mcp".into()],
        default_role: None,
    })
    .await
    .unwrap();
    let hashing = HashingKey::new(&SecretBox::from(HASHING_SECRET.as_bytes().to_vec())).unwrap();
    acme.create_client(&ServiceClient {
        id: ClientId::new("ci").unwrap(),
        tenant: tenant("acme"),
        name: "CI".into(),
        role: Role::Admin,
        secret_hash: hashing.hash(b"ci-secret"),
        disabled: false,
    })
    .await
    .unwrap();
    let gw = TestGateway::start(
        "",
        &format!("{}{}", db.toml(), stdio_demo("alpha", None, "")),
    )
    .await;
    let url = format!("{}/t/acme/mcp", gw.base);

    let sign = |claims: serde_json::Value| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&pkcs8)).unwrap()
    };
    let good = sign(
        json!({"iss": "https://idp.acme.test", "aud": url, "exp": now() + 300,
        "email": "ada@acme.com", "scope": "mcp openid"}),
    );
    let (client, _) = connect_as(&url, Era::Legacy, &good).await;
    assert!(tool_names(&client).await.iter().any(|t| t == "alpha__echo"));

    // Missing scope: 403 insufficient_scope with the scope named in the challenge.
    let narrow = sign(
        json!({"iss": "https://idp.acme.test", "aud": url, "exp": now() + 300,
        "email": "ada@acme.com", "scope": "openid"}),
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&narrow)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("scope=\"mcp\""),
        "{challenge}"
    );
    // A token for another audience is refused.
    let elsewhere = sign(
        json!({"iss": "https://idp.acme.test", "aud": "https://other.example",
        "exp": now() + 300, "email": "ada@acme.com", "scope": "mcp"}),
    );
    assert!(
        try_connect(&url, Era::Legacy, Some(&elsewhere))
            .await
            .is_err()
    );

    // Client credentials: a short-lived token for the service client.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "acme/ci"),
        ("client_secret", "ci-secret"),
    ];
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/oauth/token", gw.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&form))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(body["token_type"], "Bearer");
    let (ci, _) = connect_as(&url, Era::Modern, &token).await;
    assert!(
        tool_names(&ci)
            .await
            .iter()
            .any(|t| t == "alpha__slow_count"),
        "admin role"
    );
    // The same token on globex's endpoint is a cross-tenant attempt.
    assert!(
        try_connect(
            &format!("{}/t/globex/mcp", gw.base),
            Era::Legacy,
            Some(&token)
        )
        .await
        .is_err()
    );
    let wrong = [
        ("grant_type", "client_credentials"),
        ("client_id", "acme/ci"),
        ("client_secret", "nope"),
    ];
    let resp = http
        .post(format!("{}/oauth/token", gw.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&wrong))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let resp = http
        .post(format!("{}/oauth/token", gw.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("grant_type", "password")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // A body that is not a form gets an RFC 6749 error too, not a framework message.
    let resp = http
        .post(format!("{}/oauth/token", gw.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    // The published metadata and keys verify the token.
    let meta: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gw.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(meta["issuer"], gw.base);
    let jwks: serde_json::Value = reqwest::get(meta["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    db.cleanup().await;
}

fn cli(args: &[&str], db: &TestDb, public_url: &str) -> std::process::Output {
    std::process::Command::new(support::switchboard_bin())
        .args(args)
        .env("SWITCHBOARD_DATABASE_URL", &db.url)
        .env("SWITCHBOARD_MASTER_KEY", support::TEST_MASTER_KEY)
        .env("SWITCHBOARD_AUTH__PUBLIC_URL", public_url)
        .env("SWITCHBOARD_AUTH__KEY_HASHING_SECRET", HASHING_SECRET)
        .output()
        .expect("run switchboard")
}

#[tokio::test]
async fn token_cli_issues_inspects_and_revokes() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    provision(&store).await;
    drop(store);
    let gw = TestGateway::start(
        "",
        &format!("{}{}", db.toml(), stdio_demo("alpha", None, "")),
    )
    .await;
    let url = format!("{}/t/acme/mcp", gw.base);

    let out = cli(
        &[
            "token",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "ada@acme.com",
            "--ttl",
            "1h",
        ],
        &db,
        &gw.base,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (client, _) = connect_as(&url, Era::Legacy, &token).await;
    assert!(tool_names(&client).await.iter().any(|t| t == "alpha__echo"));

    let out = cli(&["token", "inspect", &token], &db, &gw.base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["status"], "valid");
    assert_eq!(inspected["claims"]["sub"], "user:ada@acme.com");

    let out = cli(&["token", "revoke", &token], &db, &gw.base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Picked up by the gateway's reload loop (100 ms in tests).
    let refused = support::eventually_async(std::time::Duration::from_secs(5), || async {
        try_connect(&url, Era::Legacy, Some(&token)).await.is_err()
    })
    .await;
    assert!(refused, "revoked token still accepted");
    let out = cli(&["token", "inspect", &token], &db, &gw.base);
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["status"], "revoked");

    // Bad input is refused with a message naming the flag.
    let out = cli(
        &[
            "token",
            "issue",
            "--tenant",
            "../x",
            "--user",
            "ada@acme.com",
        ],
        &db,
        &gw.base,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant"));
    let _ = user("x@y.z");
    db.cleanup().await;
}

#[tokio::test]
async fn without_tenants_the_default_tenant_is_open() {
    let gw = TestGateway::start("max_sessions_per_user = 2", &stdio_demo("demo", None, "")).await;
    let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    assert!(tool_names(&client).await.iter().any(|t| t == "demo__echo"));
    // Every open-mode client is the same anonymous caller: the per-user limit does not
    // apply (it would cap the whole gateway), only `max_sessions` does.
    let (_second, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let (third, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    assert!(tool_names(&third).await.iter().any(|t| t == "demo__echo"));
    let (scoped, _) = connect(&format!("{}/t/default/mcp", gw.base), Era::Modern).await;
    assert!(tool_names(&scoped).await.iter().any(|t| t == "demo__echo"));
    assert!(
        try_connect(&format!("{}/t/acme/mcp", gw.base), Era::Legacy, None)
            .await
            .is_err()
    );
}
