//! Servers a tenant defines for itself through the admin API, through the real server: tried
//! before saving (`validate` connects and lists), saved with `If-Match`, in force at once
//! for that tenant only (its secrets in the headers, grants deciding who uses it), changed
//! and deleted at once — on SQLite and PostgreSQL — and the SSRF guard refusing private
//! addresses by URL and by name resolution.

mod support;

use reqwest::Method as M;
use serde_json::{Value, json};
use support::admin::{Api, PLATFORM, set_secret};
use support::capture::{capturing_upstream, reached};
use support::tenancy::{Backend, TestDb};
use support::{Era, TestGateway, call, connect_as, text, tool_names};

fn crm(url: &str) -> Value {
    json!({
        "transport": "streamable-http",
        "url": url,
        "headers": {"Authorization": "Bearer {{secret.crm_token}}", "X-Static": "s3cret-static"},
        "description": "our CRM",
    })
}

async fn tools_of(url: &str, key: &str) -> Vec<String> {
    let (client, _) = connect_as(url, Era::Modern, key).await;
    let names = tool_names(&client).await;
    let _ = client.cancel().await;
    names
}

async fn echo(url: &str, key: &str, tool: &str, marker: &str) -> Result<String, rmcp::ErrorData> {
    support::echo_as(url, Era::Legacy, key, tool, marker).await
}

async fn tenant_defines_its_own_server(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (url, seen, upstream) = capturing_upstream().await;
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n[tenant_servers]\nallow_private_networks = true\n",
        db.toml()
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    let added = api
        .send(
            Some(PLATFORM),
            M::POST,
            "/tenants/acme/members",
            Some(json!({"user": "ada@acme.com"})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let root = api.user_key("acme", "root@acme.com").await;
    let ada = api.user_key("acme", "ada@acme.com").await;
    let boss = api.user_key("globex", "boss@globex.com").await;
    let acme_mcp = format!("{}/t/acme/mcp", gw.base);
    let globex_mcp = format!("{}/t/globex/mcp", gw.base);

    // Tried before saving: a secret it names must be set, then it connects and lists.
    let trial = json!({"name": "crm", "definition": crm(&url)});
    let missing = api
        .send(
            Some(&root),
            M::POST,
            "/tenants/acme/servers/validate",
            Some(trial.clone()),
        )
        .await;
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("crm_token")
    );
    set_secret(&api, &root, "/tenants/acme/secrets/crm_token", "token-acme").await;
    let tried = api
        .send(
            Some(&root),
            M::POST,
            "/tenants/acme/servers/validate",
            Some(trial),
        )
        .await;
    assert_eq!(tried.status, 200, "{}", tried.body);
    let listed: Vec<&str> = tried.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(listed.contains(&"echo"), "{}", tried.body);
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| r.auth == "Bearer token-acme"),
        "validate connected with the tenant's secret"
    );
    let unreachable = api
        .send(
            Some(&root),
            M::POST,
            "/tenants/acme/servers/validate",
            Some(json!({"name": "crm", "definition": crm("http://127.0.0.1:1/mcp")})),
        )
        .await;
    assert_eq!(unreachable.status, 502, "{}", unreachable.body);
    assert_eq!(unreachable.body["error"]["code"], "upstream_unreachable");
    assert!(
        !unreachable.body.to_string().contains("token-acme"),
        "a secret value never appears in an error"
    );

    // Members cannot define servers; another tenant's admin does not even see the tenant.
    let path = "/tenants/acme/servers/crm";
    let denied = api.send(Some(&ada), M::PUT, path, Some(crm(&url))).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let hidden = api.send(Some(&boss), M::PUT, path, Some(crm(&url))).await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);

    // Saved, and in force at once for the tenant's users that grants allow.
    let created = api.send(Some(&root), M::PUT, path, Some(crm(&url))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["etag"], "\"1\"");
    let read = api.send(Some(&root), M::GET, path, None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        read.body["headers"]["Authorization"],
        "Bearer {{secret.crm_token}}"
    );
    assert_eq!(
        read.body["headers"]["X-Static"], "[redacted]",
        "literal values are write-only"
    );
    assert!(!read.body.to_string().contains("s3cret-static"));
    assert!(
        tools_of(&acme_mcp, &root)
            .await
            .contains(&"crm__echo".to_owned())
    );
    assert!(
        !tools_of(&acme_mcp, &ada)
            .await
            .iter()
            .any(|t| t.starts_with("crm__")),
        "no grant, no tools"
    );
    let grant = api
        .send(
            Some(&root),
            M::POST,
            "/tenants/acme/grants",
            Some(json!({"grantee": {"type": "user", "id": "ada@acme.com"}, "target": "crm"})),
        )
        .await;
    assert_eq!(grant.status, 201, "{}", grant.body);
    // A member's own secret of that name never goes to a server a tenant admin defined.
    set_secret(&api, &ada, "/me/secrets/crm_token", "token-ada-own").await;
    assert_eq!(
        echo(&acme_mcp, &ada, "crm__echo", "from-ada")
            .await
            .unwrap(),
        "from-ada"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|r| !r.auth.contains("token-ada-own")),
        "a member's own secret reached a tenant-defined server"
    );
    {
        let sent = seen.lock().unwrap();
        let request = sent.iter().find(|r| r.body.contains("from-ada")).unwrap();
        assert_eq!(request.auth, "Bearer token-acme");
        assert_eq!(request.headers["x-static"], "s3cret-static");
    }

    // Another tenant neither sees nor reaches it.
    assert!(
        !tools_of(&globex_mcp, &boss)
            .await
            .iter()
            .any(|t| t.starts_with("crm"))
    );
    let err = echo(&globex_mcp, &boss, "crm__echo", "from-globex")
        .await
        .unwrap_err();
    assert_eq!(err.code.0, -32602, "{err:?}");
    assert!(!reached(&seen, "from-globex"));
    let listed = api
        .send(Some(&boss), M::GET, "/tenants/globex/servers", None)
        .await;
    assert!(!listed.body.to_string().contains("crm"), "{}", listed.body);
    let ours = api
        .send(Some(&root), M::GET, "/tenants/acme/servers", None)
        .await;
    let entry = ours.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crm")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(entry["owner"], "tenant", "{}", ours.body);
    assert_eq!(entry["status"], "ready", "{}", ours.body);

    // Changed with If-Match (a stale one is refused), the round-tripped [redacted] value
    // kept; in force at once.
    let body = json!({
        "transport": "streamable-http", "url": url, "prefix": "sales",
        "headers": read.body["headers"].clone(),
    });
    let stale = api
        .send_with(
            Some(&root),
            M::PUT,
            path,
            Some(body.clone()),
            &[("If-Match", "\"7\"")],
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    let changed = api
        .send_with(
            Some(&root),
            M::PUT,
            path,
            Some(body),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.headers["etag"], "\"2\"");
    let tools = tools_of(&acme_mcp, &ada).await;
    assert!(tools.contains(&"sales__echo".to_owned()), "{tools:?}");
    assert!(!tools.iter().any(|t| t.starts_with("crm__")), "{tools:?}");
    echo(&acme_mcp, &ada, "sales__echo", "after-change")
        .await
        .unwrap();
    {
        let sent = seen.lock().unwrap();
        let request = sent
            .iter()
            .find(|r| r.body.contains("after-change"))
            .unwrap();
        assert_eq!(
            request.headers["x-static"], "s3cret-static",
            "kept, not overwritten"
        );
    }

    // Deleted: gone at once.
    let deleted = api.send(Some(&root), M::DELETE, path, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert!(
        !tools_of(&acme_mcp, &ada)
            .await
            .iter()
            .any(|t| t.starts_with("sales__"))
    );
    let err = echo(&acme_mcp, &ada, "sales__echo", "after-delete")
        .await
        .unwrap_err();
    assert_eq!(err.code.0, -32602, "{err:?}");
    assert_eq!(api.send(Some(&root), M::GET, path, None).await.status, 404);

    gw.stop().await;
    upstream.cancel();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_own_server_on_sqlite() {
    tenant_defines_its_own_server(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_own_server_on_postgres() {
    tenant_defines_its_own_server(Backend::Postgres).await;
}

/// This machine's own name, when it resolves to a private address (as in most containers
/// and hosts files).
async fn private_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_owned();
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .ok()?
        .collect();
    let private = !addrs.is_empty()
        && addrs
            .iter()
            .all(|a| !switchboard_domain::network::is_public(a.ip()));
    private.then_some(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_commands_and_clashes_are_refused() {
    let (url, seen, upstream) = capturing_upstream().await;
    let config = format!(
        "[admin]\ntoken = {PLATFORM:?}\n[upstreams.demo]\ntransport = \"streamable-http\"\nurl = \"{url}\"\n"
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com")]).await;
    let root = api.user_key("acme", "root@acme.com").await;
    let put = |name: &'static str, body: Value| {
        let api = &api;
        let root = &root;
        async move {
            api.send(
                Some(root),
                M::PUT,
                &format!("/tenants/acme/servers/{name}"),
                Some(body),
            )
            .await
        }
    };
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    for target in [
        url.clone(),
        format!("http://localhost:{port}/mcp"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]:9/mcp".to_owned(),
        "http://10.0.0.1/{{tenant}}".to_owned(),
    ] {
        let refused = put("inner", json!({"transport": "sse", "url": target})).await;
        assert_eq!(refused.status, 422, "{target}: {}", refused.body);
        assert_eq!(refused.body["error"]["field"], "url");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("allow_private_networks"), "{message}");
    }
    let other = put(
        "shell",
        json!({"transport": "sse", "url": "https://a.example.com/", "tenants": ["globex"]}),
    )
    .await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(
        other.body["error"]["field"], "tenants",
        "not a field of a tenant's server"
    );
    let stdio = put(
        "shell",
        json!({"transport": "stdio", "url": "https://a.example.com/"}),
    )
    .await;
    assert_eq!(stdio.status, 422, "{}", stdio.body);
    assert_eq!(stdio.body["error"]["field"], "transport");
    let clash = put(
        "demo",
        json!({"transport": "sse", "url": "https://a.example.com/"}),
    )
    .await;
    assert_eq!(clash.body["error"]["field"], "name", "{}", clash.body);
    let prefix = put(
        "other",
        json!({"transport": "sse", "url": "https://a.example.com/", "prefix": "demo"}),
    )
    .await;
    assert_eq!(prefix.body["error"]["field"], "prefix", "{}", prefix.body);
    let redacted = put(
        "fresh",
        json!({"transport": "sse", "url": "https://a.example.com/", "headers": {"X-Key": "[redacted]"}}),
    )
    .await;
    assert_eq!(
        redacted.body["error"]["field"], "headers",
        "{}",
        redacted.body
    );
    let unmatched = api
        .send_with(
            Some(&root),
            M::PUT,
            "/tenants/acme/servers/fresh",
            Some(json!({"transport": "sse", "url": "https://a.example.com/"})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(
        unmatched.status, 412,
        "If-Match asks for an existing server"
    );

    // A name that resolves to a private address passes the URL check and is refused when
    // the gateway resolves it.
    if let Some(host) = private_host_name().await {
        let trial = json!({"name": "byname", "definition": {"transport": "streamable-http", "url": format!("http://{host}:{port}/mcp")}});
        let answer = api
            .send(
                Some(&root),
                M::POST,
                "/tenants/acme/servers/validate",
                Some(trial),
            )
            .await;
        assert_eq!(answer.status, 502, "{}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("no public address"), "{message}");
    } else {
        eprintln!(
            "skipped the name-resolution check: this machine's name does not resolve to a private address"
        );
    }
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|r| !r.body.contains("byname")),
        "nothing reached the private upstream"
    );
    gw.stop().await;
    upstream.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_admins_alone_give_a_tenant_a_command_of_its_own() {
    let data = support::temp_dir("owned-stdio");
    let server = format!("data_dir = {:?}\n", data.display().to_string());
    let mut gw = TestGateway::start(&server, &format!("[admin]\ntoken = {PLATFORM:?}\n")).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    let root = api.user_key("acme", "root@acme.com").await;
    let boss = api.user_key("globex", "boss@globex.com").await;
    set_secret(&api, &root, "/tenants/acme/secrets/api_token", "acme-token").await;
    let envy = json!({
        "transport": "stdio",
        "command": support::switchboard_bin(),
        "args": ["demo-upstream", "--env-tool", "API_TOKEN,MODE"],
        "env": {"API_TOKEN": "{{secret.api_token}}", "MODE": "literal-mode"},
        "maxOpenFiles": 256,
    });
    let path = "/tenants/acme/servers/envy";

    // A tenant admin cannot run a command on the gateway.
    let refused = api
        .send(Some(&root), M::PUT, path, Some(envy.clone()))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["error"]["field"], "transport");

    // A platform administrator can, for that tenant only.
    let created = api
        .send(Some(PLATFORM), M::PUT, path, Some(envy.clone()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["definedBy"], "platform");
    assert_eq!(created.body["env"]["MODE"], "[redacted]");
    let url = format!("{}/t/acme/mcp", gw.base);
    let (client, _) = connect_as(&url, Era::Legacy, &root).await;
    let shown = client
        .call_tool(call("envy__env", json!({})))
        .await
        .expect("the tenant's command answers");
    let _ = client.cancel().await;
    let shown: Value = serde_json::from_str(&text(&shown)).unwrap();
    assert_eq!(
        shown,
        json!({"API_TOKEN": "acme-token", "MODE": "literal-mode"})
    );
    let folder = data.join("work").join("acme").join("envy");
    assert_eq!(
        support::processes_in(&folder).len(),
        1,
        "runs in {folder:?}"
    );
    assert!(
        !tools_of(&format!("{}/t/globex/mcp", gw.base), &boss)
            .await
            .iter()
            .any(|t| t.starts_with("envy__"))
    );

    // What the platform defined, the tenant admin neither changes nor deletes.
    let http = json!({"transport": "sse", "url": "https://a.example.com/"});
    let changed = api.send(Some(&root), M::PUT, path, Some(http)).await;
    assert_eq!(changed.status, 403, "{}", changed.body);
    let deleted = api.send(Some(&root), M::DELETE, path, None).await;
    assert_eq!(deleted.status, 403, "{}", deleted.body);
    // Nor tries its write-only values elsewhere under its name.
    let trial = json!({"name": "envy", "definition": {"transport": "sse", "url": "https://a.example.com/", "headers": {"X-Key": "[redacted]"}}});
    let tried = api
        .send(
            Some(&root),
            M::POST,
            "/tenants/acme/servers/validate",
            Some(trial),
        )
        .await;
    assert_eq!(tried.status, 403, "{}", tried.body);
    let deleted = api.send(Some(PLATFORM), M::DELETE, path, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    for _ in 0..100 {
        if support::processes_in(&folder).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        support::processes_in(&folder).is_empty(),
        "deleting the definition stops its child"
    );
    gw.stop().await;
}
