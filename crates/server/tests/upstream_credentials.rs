//! Per-tenant and per-user upstream credentials through the real server: a definition with
//! `{{secret.NAME}}` / `{{tenant}}` gets a connection per tenant (or per user with a secret of
//! their own), each carrying only its owner's values — checked with a header-capturing HTTP
//! upstream and an environment-showing stdio upstream — on SQLite and PostgreSQL. A missing
//! secret fails closed with an error naming it; the client's own credential never goes
//! upstream; a changed secret replaces the connection.

mod support;

use std::time::Duration;

use reqwest::Method as M;
use serde_json::{Value, json};
use support::admin::{Api, PLATFORM, set_secret};
use support::capture::{Received, capturing_upstream, reached, seen_with};
use support::tenancy::{Backend, TestDb};
use support::{
    Era, TestGateway, call, connect_as, processes_in, switchboard_bin, temp_dir, text, tool_names,
};

async fn echo(url: &str, key: &str, marker: &str) -> Result<String, rmcp::model::ErrorData> {
    support::echo_as(url, Era::Modern, key, "gh__echo", marker).await
}

async fn http_credentials_per_tenant_and_user(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (url, seen, upstream) = capturing_upstream().await;
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n[upstreams.gh]\ntransport = \"streamable-http\"\nurl = \"{url}?tenant={{{{tenant}}}}\"\nheaders = {{ Authorization = \"Bearer {{{{secret.gh_token}}}}\" }}\n",
        db.toml()
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    let member = api
        .send(
            Some(PLATFORM),
            M::POST,
            "/tenants/acme/members",
            Some(json!({"user": "ada@acme.com"})),
        )
        .await;
    assert_eq!(member.status, 201, "{}", member.body);
    let grant = api
        .send(
            Some(PLATFORM),
            M::POST,
            "/tenants/acme/grants",
            Some(json!({"grantee": {"type": "user", "id": "ada@acme.com"}, "target": "gh"})),
        )
        .await;
    assert_eq!(grant.status, 201, "{}", grant.body);
    let root = api.user_key("acme", "root@acme.com").await;
    let ada = api.user_key("acme", "ada@acme.com").await;
    let boss = api.user_key("globex", "boss@globex.com").await;
    let acme_mcp = format!("{}/t/acme/mcp", gw.base);
    let globex_mcp = format!("{}/t/globex/mcp", gw.base);

    // No secret yet: nothing listed, and a call fails closed naming the secret and the fix.
    let (client, _) = connect_as(&acme_mcp, Era::Modern, &root).await;
    assert!(
        !tool_names(&client)
            .await
            .iter()
            .any(|t| t.starts_with("gh__")),
        "a server without its secret lists nothing"
    );
    let _ = client.cancel().await;
    let err = echo(&acme_mcp, &root, "before-secret").await.unwrap_err();
    assert_eq!(err.code.0, -32013, "{err:?}");
    assert!(
        err.message.contains("gh_token") && err.message.contains("--mine"),
        "{}",
        err.message
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing went upstream");

    // Each tenant's calls carry its own secret, on its own connection.
    set_secret(&api, &root, "/tenants/acme/secrets/gh_token", "token-acme").await;
    set_secret(
        &api,
        &boss,
        "/tenants/globex/secrets/gh_token",
        "token-globex",
    )
    .await;
    assert_eq!(
        echo(&acme_mcp, &root, "from-acme").await.unwrap(),
        "from-acme"
    );
    assert_eq!(
        echo(&globex_mcp, &boss, "from-globex").await.unwrap(),
        "from-globex"
    );
    let (auth, uri) = seen_with(&seen, "from-acme");
    assert_eq!(auth, "Bearer token-acme");
    assert!(uri.ends_with("?tenant=acme"), "{uri}");
    let (auth, uri) = seen_with(&seen, "from-globex");
    assert_eq!(auth, "Bearer token-globex");
    assert!(uri.ends_with("?tenant=globex"), "{uri}");

    // A member without a secret of her own uses the tenant's; with one, her own.
    assert!(echo(&acme_mcp, &ada, "ada-tenant").await.is_ok());
    assert_eq!(seen_with(&seen, "ada-tenant").0, "Bearer token-acme");
    set_secret(&api, &ada, "/me/secrets/gh_token", "token-ada").await;
    assert!(echo(&acme_mcp, &ada, "ada-own").await.is_ok());
    assert_eq!(seen_with(&seen, "ada-own").0, "Bearer token-ada");
    assert!(echo(&acme_mcp, &root, "root-again").await.is_ok());
    assert_eq!(
        seen_with(&seen, "root-again").0,
        "Bearer token-acme",
        "the user's own secret is never used for anyone else"
    );

    // A changed secret replaces the connection at once; a deleted user secret falls back.
    set_secret(
        &api,
        &root,
        "/tenants/acme/secrets/gh_token",
        "token-acme-2",
    )
    .await;
    assert!(echo(&acme_mcp, &root, "after-rotation").await.is_ok());
    assert_eq!(seen_with(&seen, "after-rotation").0, "Bearer token-acme-2");
    let deleted = api
        .send(Some(&ada), M::DELETE, "/me/secrets/gh_token", None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert!(echo(&acme_mcp, &ada, "ada-fallback").await.is_ok());
    assert_eq!(seen_with(&seen, "ada-fallback").0, "Bearer token-acme-2");

    // The clients' own credentials never reached the upstream.
    for r in seen.lock().unwrap().iter() {
        for key in [&root, &ada, &boss] {
            assert!(
                !r.auth.contains(key.as_str()) && !r.body.contains(key.as_str()),
                "a client's API key went upstream"
            );
        }
    }

    // The tenant admin sees the tenant's own connection in the servers health.
    let servers = api
        .send(Some(&root), M::GET, "/tenants/acme/servers", None)
        .await;
    assert_eq!(servers.status, 200, "{}", servers.body);
    let gh = servers.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["name"] == "gh"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(gh["status"], "ready", "{}", servers.body);

    gw.stop().await;
    upstream.cancel();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_gets_each_tenants_and_users_own_secret_on_sqlite() {
    http_credentials_per_tenant_and_user(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_gets_each_tenants_and_users_own_secret_on_postgres() {
    http_credentials_per_tenant_and_user(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_upstream_gets_a_process_per_tenant_with_only_its_declared_environment() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n[upstreams.envy]\ntransport = \"stdio\"\ncommand = {:?}\nargs = [\"demo-upstream\", \"--env-tool\", \"API_TOKEN,TENANT,CARGO_MANIFEST_DIR\"]\nenv = {{ API_TOKEN = \"{{{{secret.api_token}}}}\", TENANT = \"{{{{tenant}}}}\" }}\n",
        db.toml(),
        switchboard_bin()
    );
    let data = temp_dir("work");
    let server = format!("data_dir = {:?}\n", data.display().to_string());
    let mut gw = TestGateway::start(&server, &config).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    let root = api.user_key("acme", "root@acme.com").await;
    let boss = api.user_key("globex", "boss@globex.com").await;
    set_secret(&api, &root, "/tenants/acme/secrets/api_token", "acme-stdio").await;
    set_secret(
        &api,
        &boss,
        "/tenants/globex/secrets/api_token",
        "globex-stdio",
    )
    .await;

    let shown = |tenant: &'static str, key: String| {
        let url = format!("{}/t/{tenant}/mcp", gw.base);
        async move {
            let (client, _) = connect_as(&url, Era::Legacy, &key).await;
            let result = client
                .call_tool(call("envy__env", json!({})))
                .await
                .expect("env tool answers");
            let _ = client.cancel().await;
            serde_json::from_str::<Value>(&text(&result)).expect("env tool answers JSON")
        }
    };
    let acme = shown("acme", root.clone()).await;
    let globex = shown("globex", boss.clone()).await;
    assert_eq!(
        acme,
        json!({"API_TOKEN": "acme-stdio", "TENANT": "acme", "CARGO_MANIFEST_DIR": null})
    );
    assert_eq!(
        globex,
        json!({"API_TOKEN": "globex-stdio", "TENANT": "globex", "CARGO_MANIFEST_DIR": null}),
        "another process, with only globex's values; the gateway's own environment is scrubbed"
    );
    let per_tenant = gw.gateway().per_tenant();
    for name in ["acme", "globex"] {
        let tenant = switchboard_domain::tenancy::TenantId::new(name).unwrap();
        assert_eq!(per_tenant.connections_of(&tenant).len(), 1);
        // Each tenant's child runs in its own private working folder.
        let folder = data.join("work").join(name).join("envy");
        assert_eq!(
            processes_in(&folder).len(),
            1,
            "{name}'s child in {folder:?}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&folder).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }
    gw.stop().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_routed_to_its_own_endpoint_never_reaches_the_shared_one() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let (shared_url, shared_seen, shared_stop) = capturing_upstream().await;
    let (acme_url, acme_seen, acme_stop) = capturing_upstream().await;
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n[upstreams.gh]\ntransport = \"streamable-http\"\nurl = \"{shared_url}\"\ntenant_urls = {{ acme = \"{acme_url}?tenant={{{{tenant}}}}\" }}\n",
        db.toml()
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    let root = api.user_key("acme", "root@acme.com").await;
    let boss = api.user_key("globex", "boss@globex.com").await;
    for era in [Era::Legacy, Era::Modern] {
        let marker = format!("acme-{era:?}");
        let url = format!("{}/t/acme/mcp", gw.base);
        let (client, _) = connect_as(&url, era, &root).await;
        assert!(tool_names(&client).await.contains(&"gh__echo".to_owned()));
        let done = client
            .call_tool(call("gh__echo", json!({"text": marker})))
            .await
            .unwrap();
        assert_eq!(text(&done), marker);
        let _ = client.cancel().await;
        let (_, uri) = seen_with(&acme_seen, &marker);
        assert!(uri.ends_with("?tenant=acme"), "{uri}");
        assert!(
            !reached(&shared_seen, &marker),
            "acme's call reached the shared endpoint"
        );
        let marker = format!("globex-{era:?}");
        assert_eq!(
            echo(&format!("{}/t/globex/mcp", gw.base), &boss, &marker)
                .await
                .unwrap(),
            marker
        );
        seen_with(&shared_seen, &marker);
        assert!(
            !reached(&acme_seen, &marker),
            "globex's call reached acme's endpoint"
        );
    }
    gw.stop().await;
    shared_stop.cancel();
    acme_stop.cancel();
    db.cleanup().await;
}

const IDENTITY_KEY: &str = "identity-key-shared-with-the-upstream-0123";

/// What an upstream does to check identity headers: HMAC over the raw body, constant time.
fn verify(r: &Received) -> bool {
    use sha2::{Digest, Sha256};
    let h = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body_digest: String = Sha256::digest(r.body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let payload = format!(
        "v1\n{}\n{}\n{}\n{}\n{body_digest}",
        h("x-switchboard-timestamp"),
        h("x-switchboard-tenant"),
        h("x-switchboard-user"),
        h("x-switchboard-groups"),
    );
    let Some(hex) = h("x-switchboard-signature")
        .strip_prefix("v1=")
        .map(str::to_owned)
    else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, IDENTITY_KEY.as_bytes());
    ring::hmac::verify(&key, payload.as_bytes(), &tag).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_name_each_caller_and_verify_with_the_shared_key() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let (url, seen, stop) = capturing_upstream().await;
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n[upstreams.gh]\ntransport = \"streamable-http\"\nurl = \"{url}\"\nidentity_key = {IDENTITY_KEY:?}\n",
        db.toml()
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    let group = api
        .send(
            Some(PLATFORM),
            M::POST,
            "/tenants/acme/groups",
            Some(json!({"name": "eng", "members": ["root@acme.com"]})),
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.body);
    let root = api.user_key("acme", "root@acme.com").await;
    let boss = api.user_key("globex", "boss@globex.com").await;
    for era in [Era::Legacy, Era::Modern] {
        let (a, g) = (format!("id-acme-{era:?}"), format!("id-globex-{era:?}"));
        let (client, _) = connect_as(&format!("{}/t/acme/mcp", gw.base), era, &root).await;
        client
            .call_tool(call("gh__echo", json!({"text": a})))
            .await
            .unwrap();
        let _ = client.cancel().await;
        echo(&format!("{}/t/globex/mcp", gw.base), &boss, &g)
            .await
            .unwrap();
        // One shared connection, yet each request names its own caller.
        for (marker, tenant, user, groups) in [
            (&a, "acme", "user:root@acme.com", "eng"),
            (&g, "globex", "user:boss@globex.com", ""),
        ] {
            let seen = seen.lock().unwrap();
            let r = seen
                .iter()
                .find(|r| r.body.contains(marker.as_str()))
                .unwrap();
            let h = |name: &str| r.headers.get(name).unwrap().to_str().unwrap().to_owned();
            assert_eq!(h("x-switchboard-tenant"), tenant);
            assert_eq!(h("x-switchboard-user"), user);
            assert_eq!(h("x-switchboard-groups"), groups);
            assert!(verify(r), "{era:?}: the signature verifies");
            // Moved to another body, or with another tenant, it no longer does.
            let forged = Received {
                auth: String::new(),
                uri: String::new(),
                body: r.body.replace(marker.as_str(), "something-else"),
                headers: r.headers.clone(),
            };
            assert!(!verify(&forged));
            let mut other = r.headers.clone();
            other.insert("x-switchboard-tenant", "mallory".parse().unwrap());
            assert!(!verify(&Received {
                auth: String::new(),
                uri: String::new(),
                body: r.body.clone(),
                headers: other,
            }));
        }
    }
    // The gateway's own requests (initialize, lists) are signed with an empty identity.
    assert!(seen.lock().unwrap().iter().all(verify));
    gw.stop().await;
    stop.cancel();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_trace_context_reaches_the_upstream() {
    let (url, seen, stop) = capturing_upstream().await;
    let mut gw = TestGateway::start(
        "",
        &support::http_upstream("gh", "streamable-http", &url, ""),
    )
    .await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (traceparent, marker) in [(parent, "traced"), ("not-a-traceparent", "untraced")] {
        support::call_with_trace(
            &gw.mcp_url(),
            Some(traceparent),
            "gh__echo",
            json!({"text": marker}),
        )
        .await
        .unwrap();
    }
    {
        let seen = seen.lock().unwrap();
        let traced = seen.iter().find(|r| r.body.contains("\"traced\"")).unwrap();
        assert_eq!(traced.headers["traceparent"], parent, "as an HTTP header");
        assert_eq!(traced.headers["tracestate"], "vendor=1");
        let body: Value = serde_json::from_str(&traced.body).unwrap();
        assert_eq!(
            body["params"]["_meta"]["traceparent"], parent,
            "and in _meta"
        );
        let untraced = seen
            .iter()
            .find(|r| r.body.contains("\"untraced\""))
            .unwrap();
        assert!(
            untraced.headers.get("traceparent").is_none() && !untraced.body.contains("traceparent"),
            "a malformed traceparent is not passed on"
        );
    }
    gw.stop().await;
    stop.cancel();
}
