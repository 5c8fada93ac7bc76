//! The tenant-isolation suite: two tenants behind one gateway, each with its own servers,
//! members, groups and grants. For every surface — tools, prompts, resources, subscriptions,
//! list-change notifications, session ids, error messages — tenant B tries to reach tenant
//! A's thing and fails, and members see only what is granted. Runs on SQLite and PostgreSQL.

#![allow(deprecated)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_auth::{AuthEventSink, Refusal};

use rmcp::model::{ReadResourceRequestParams, SubscribeRequestParams};
use serde_json::json;
use support::tenancy::{Backend, Org, TestDb, legacy_session, provision, tenant};
use support::{Era, TestGateway, call, connect_as, mcp_error, stdio_demo, text, tool_names};

fn upstreams() -> String {
    support::tenancy::two_tenant_upstreams()
}

async fn start(db: &TestDb) -> (TestGateway, Org) {
    // Provision before start, through the same store code the gateway uses.
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let gw = TestGateway::start("", &format!("{}{}", db.toml(), upstreams())).await;
    (gw, org)
}

fn raw_post(url: &str, bearer: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req
}

/// Records refusals: (cross-tenant?, resource, key id).
#[derive(Default)]
struct Recorded(Mutex<Vec<(bool, String, Option<String>)>>);

impl AuthEventSink for Recorded {
    fn refused(&self, r: &Refusal<'_>) {
        self.0.lock().unwrap().push((
            r.error.is_cross_tenant(),
            r.resource.to_owned(),
            r.key_id.map(str::to_owned),
        ));
    }
}

async fn isolation(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (mut gw, org) = start(&db).await;
    let acme = format!("{}/t/acme/mcp", gw.base);
    let globex = format!("{}/t/globex/mcp", gw.base);
    let refusals = Arc::new(Recorded::default());
    gw.tenancy().auth.set_event_sink(refusals.clone());

    // A member sees exactly what grants allow: alpha (minus the denied slow_count) through
    // group eng, shared/echo through role member — never globex's beta.
    let (ada, ada_seen) = connect_as(&acme, Era::Legacy, &org.ada).await;
    assert_eq!(
        tool_names(&ada).await,
        [
            "alpha__add",
            "alpha__echo",
            "alpha__sample",
            "alpha__toggle_extra",
            "shared__echo"
        ]
    );
    let prompts: Vec<String> = ada
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(prompts, ["alpha__greeting"]);
    let resources: Vec<String> = ada
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(
        resources.iter().all(|u| u.starts_with("alpha+")),
        "{resources:?}"
    );
    assert!(!resources.is_empty());

    // A denied or foreign tool answers exactly like one that does not exist.
    let unknown = mcp_error(
        ada.call_tool(call("nope__nothing", json!({})))
            .await
            .unwrap_err(),
    );
    for forbidden in ["beta__echo", "alpha__slow_count", "shared__add"] {
        let err = mcp_error(
            ada.call_tool(call(forbidden, json!({"text": "x"})))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code, unknown.code, "{forbidden}");
        assert_eq!(
            err.message.replace(forbidden, "NAME"),
            unknown.message.replace("nope__nothing", "NAME"),
            "{forbidden}"
        );
    }
    let ok = ada
        .call_tool(call("shared__echo", json!({"text": "hi"})))
        .await
        .unwrap();
    assert_eq!(text(&ok), "hi");

    // globex sees its own servers and shared, never alpha; its calls cannot reach alpha.
    let (gus, gus_seen) = connect_as(&globex, Era::Legacy, &org.gus).await;
    let gus_tools = tool_names(&gus).await;
    assert!(gus_tools.iter().any(|t| t == "beta__echo"), "{gus_tools:?}");
    assert!(
        gus_tools.iter().all(|t| !t.starts_with("alpha__")),
        "{gus_tools:?}"
    );
    let err = mcp_error(
        gus.call_tool(call("alpha__echo", json!({"text": "x"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, unknown.code);
    let mut read = ReadResourceRequestParams::new("alpha+demo://readme");
    read.meta = None;
    assert!(gus.read_resource(read).await.is_err());
    assert!(
        gus.subscribe(SubscribeRequestParams::new("alpha+demo://readme"))
            .await
            .is_err()
    );
    let prompt = gus
        .get_prompt(rmcp::model::GetPromptRequestParams::new("alpha__greeting"))
        .await;
    assert!(prompt.is_err());

    // The 2026-07-28 (stateless) era sees the same.
    let (gus_modern, _) = connect_as(&globex, Era::Modern, &org.gus).await;
    assert_eq!(tool_names(&gus_modern).await, gus_tools);

    // Owners see everything of their tenant, never another's.
    let (root, _) = connect_as(&acme, Era::Legacy, &org.root).await;
    let root_tools = tool_names(&root).await;
    assert!(root_tools.iter().any(|t| t == "alpha__slow_count"));
    assert!(root_tools.iter().any(|t| t == "shared__add"));
    assert!(
        root_tools.iter().all(|t| !t.starts_with("beta__")),
        "{root_tools:?}"
    );

    // A key bound to one server narrows even an owner.
    let (bound, _) = connect_as(&acme, Era::Legacy, &org.root_shared_only).await;
    assert!(
        tool_names(&bound)
            .await
            .iter()
            .all(|t| t.starts_with("shared__"))
    );

    // Readonly members get prompts and resources, no tools.
    let (rita, _) = connect_as(&acme, Era::Legacy, &org.rita).await;
    assert!(tool_names(&rita).await.is_empty());
    assert_eq!(rita.list_all_prompts().await.unwrap().len(), 1);

    // A list change on acme's alpha reaches acme's sessions, not globex's.
    let before_gus = *gus_seen.tools_changed_count.lock().unwrap();
    let changed = ada_seen.tools_changed.notified();
    root.call_tool(call("alpha__toggle_extra", json!({})))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), changed)
        .await
        .expect("acme hears about alpha's change");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*gus_seen.tools_changed_count.lock().unwrap(), before_gus);

    // A credential of one tenant on another tenant's endpoint is refused (and logged as a
    // cross-tenant attempt); so is naming another tenant by header.
    for (url, header) in [(globex.as_str(), None), (acme.as_str(), Some("globex"))] {
        let mut req = raw_post(url, Some(&org.ada));
        if let Some(h) = header {
            req = req.header("x-tenant-id", h);
        }
        let resp = req
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(matches!(status, 400 | 403), "{status} {body}");
        assert_eq!(
            body["error"]["code"],
            if status == 403 { -32021 } else { -32023 }
        );
    }

    // Both attempts were reported as cross-tenant, with the key's public id, not its secret.
    {
        let seen = refusals.0.lock().unwrap();
        let cross: Vec<_> = seen.iter().filter(|(cross, ..)| *cross).collect();
        assert_eq!(cross.len(), 2, "{seen:?}");
        assert!(
            cross
                .iter()
                .all(|(_, _, key)| key.as_deref() == Some(org.ada_key_id.as_str()))
        );
        assert!(cross[0].1.ends_with("/t/globex/mcp"), "{seen:?}");
        assert!(seen.iter().all(|(_, text, _)| !text.contains(&org.ada)));
    }

    // acme's session id presented with globex's credential is an unknown session.
    let ada_session = legacy_session(&acme, &org.ada).await;
    let replay = raw_post(&globex, Some(&org.gus))
        .header("mcp-session-id", &ada_session)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 404);
    let same_tenant_other_user = raw_post(&acme, Some(&org.root))
        .header("mcp-session-id", &ada_session)
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_tenant_other_user.status().as_u16(), 404);

    // Revocation and suspension take effect at once for new requests and open sessions.
    let tenancy = gw.tenancy().clone();
    tenancy
        .store
        .tenant(&tenant("acme"))
        .revoke_api_key(&org.ada_key_id, 1)
        .await
        .unwrap();
    tenancy.reload().await.unwrap();
    let err = ada.list_all_tools().await.unwrap_err();
    // rmcp's client reports the 401 as "Auth required".
    assert!(err.to_string().contains("Auth required"), "{err}");
    tenancy
        .store
        .set_tenant_status(
            &tenant("acme"),
            switchboard_domain::tenancy::TenantStatus::Suspended,
        )
        .await
        .unwrap();
    tenancy.reload().await.unwrap();
    let resp = raw_post(&acme, Some(&org.root))
        .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("suspended")
    );
    // globex is untouched by acme's suspension.
    assert!(gus.list_all_tools().await.is_ok());

    gw.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn isolation_on_sqlite() {
    isolation(Backend::Sqlite).await;
}

#[tokio::test]
async fn isolation_on_postgres() {
    isolation(Backend::Postgres).await;
}

#[tokio::test]
async fn unauthenticated_requests_get_a_challenge_and_metadata() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let (gw, org) = start(&db).await;
    let acme = format!("{}/t/acme/mcp", gw.base);
    let resp = raw_post(&acme, None)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let metadata_url = format!(
        "{}/.well-known/oauth-protected-resource/t/acme/mcp",
        gw.base
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32020);
    let metadata: serde_json::Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], acme);
    assert_eq!(metadata["authorization_servers"][0], gw.base);

    // Bad credentials and hostile tenant names each get a specific answer.
    let hostile = "a".repeat(10_000);
    // (url, headers, expected status, expected message)
    type Case<'a> = (String, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            acme.clone(),
            vec![("authorization", "Basic eDp5".into())],
            401,
            "Bearer scheme",
        ),
        (
            acme.clone(),
            vec![("authorization", "Bearer sb_nonsense".into())],
            401,
            "sb_<id>_<secret>",
        ),
        (
            acme.clone(),
            vec![("authorization", "Bearer not.a.jwt".into())],
            401,
            "JWT",
        ),
        (
            format!("{}/t/nope/mcp", gw.base),
            vec![("authorization", format!("Bearer {}", org.ada))],
            404,
            "unknown tenant",
        ),
        (
            format!("{}/t/Acme/mcp", gw.base),
            vec![("authorization", format!("Bearer {}", org.ada))],
            400,
            "tenant id is not valid",
        ),
        (
            format!("{}/mcp", gw.base),
            vec![
                ("authorization", format!("Bearer {}", org.ada)),
                ("x-tenant-id", hostile),
            ],
            400,
            "characters long",
        ),
    ];
    for (url, headers, status, message) in cases {
        let mut req = raw_post(&url, None);
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        let resp = req
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{url} {message}");
        let body: serde_json::Value = resp.json().await.unwrap();
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text}");
        assert!(text.len() < 400, "message stays short");
    }
    // The key's own tenant is found without naming it.
    let (client, _) = connect_as(&format!("{}/mcp", gw.base), Era::Legacy, &org.gus).await;
    assert!(tool_names(&client).await.iter().any(|t| t == "beta__echo"));
    db.cleanup().await;
}

#[tokio::test]
async fn per_session_connections_only_for_servers_of_the_sessions_tenant() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let dir = support::temp_dir("per-session");
    let upstreams = stdio_demo(
        "alpha",
        Some(&dir),
        "tenants = [\"acme\"]\nisolation = \"per-session\"",
    );
    let mut gw = TestGateway::start("", &format!("{}{upstreams}", db.toml())).await;
    let shared_only = support::processes_in(&dir).len();
    assert_eq!(shared_only, 1, "the shared connection's child");
    // A globex session lists and calls, but alpha is not globex's: no child for it.
    let (gus, _) = connect_as(&format!("{}/t/globex/mcp", gw.base), Era::Legacy, &org.gus).await;
    assert!(tool_names(&gus).await.is_empty());
    assert_eq!(support::processes_in(&dir).len(), shared_only);
    // An acme session gets its own child.
    let (ada, _) = connect_as(&format!("{}/t/acme/mcp", gw.base), Era::Legacy, &org.ada).await;
    assert!(!tool_names(&ada).await.is_empty());
    assert_eq!(support::processes_in(&dir).len(), shared_only + 1);
    drop((gus, ada));
    gw.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn progress_of_a_shared_upstream_reaches_only_its_own_caller() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let (mut gw, org) = start(&db).await;
    let (root, root_seen) =
        connect_as(&format!("{}/t/acme/mcp", gw.base), Era::Legacy, &org.root).await;
    let (gus, gus_seen) =
        connect_as(&format!("{}/t/globex/mcp", gw.base), Era::Legacy, &org.gus).await;
    // Both tenants call the same tool on the same shared connection at once.
    let root_call = support::start_call(
        &root,
        call("shared__slow_count", json!({"steps": 5, "delay_ms": 10})),
    )
    .await;
    let gus_call = support::start_call(
        &gus,
        call("shared__slow_count", json!({"steps": 3, "delay_ms": 10})),
    )
    .await;
    let (root_token, gus_token) = (
        root_call.progress_token.clone(),
        gus_call.progress_token.clone(),
    );
    root_call.await_response().await.unwrap();
    gus_call.await_response().await.unwrap();
    let settled = support::eventually(Duration::from_secs(2), || {
        root_seen.progress.lock().unwrap().len() == 5
            && gus_seen.progress.lock().unwrap().len() == 3
    })
    .await;
    assert!(settled, "each caller gets exactly its own progress");
    assert!(
        root_seen
            .progress
            .lock()
            .unwrap()
            .iter()
            .all(|p| p.progress_token == root_token)
    );
    assert!(
        gus_seen
            .progress
            .lock()
            .unwrap()
            .iter()
            .all(|p| p.progress_token == gus_token)
    );
    gw.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_tenant_ip_allowlist_refuses_other_addresses() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let (gw, org) = start(&db).await;
    let acme_url = format!("{}/t/acme/mcp", gw.base);
    let tenancy = gw.tenancy().clone();
    let set_allowlist = |ranges: &'static [&'static str]| {
        let tenancy = tenancy.clone();
        async move {
            let (mut acme, version) = tenancy
                .store
                .get_tenant_versioned(&tenant("acme"))
                .await
                .unwrap()
                .unwrap();
            acme.settings.ip_allowlist = ranges.iter().map(|r| r.to_string()).collect();
            tenancy.store.update_tenant(&acme, version).await.unwrap();
            tenancy.reload().await.unwrap();
        }
    };
    let ping = |bearer: String| {
        let url = acme_url.clone();
        async move {
            let resp = raw_post(&url, Some(&bearer))
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (
                status,
                body["error"]["message"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    set_allowlist(&["10.0.0.0/8"]).await;
    let (status, message) = ping(org.ada.clone()).await;
    assert_eq!(status, 403);
    assert!(
        message.contains("127.0.0.1") && message.contains("ipAllowlist"),
        "{message}"
    );
    // globex has no allowlist and is unaffected.
    let (client, _) = connect_as(&format!("{}/t/globex/mcp", gw.base), Era::Legacy, &org.gus).await;
    assert!(!tool_names(&client).await.is_empty());
    // A range that holds the client admits it; a broken entry refuses everyone (fail closed).
    set_allowlist(&["10.0.0.0/8", "127.0.0.0/8"]).await;
    legacy_session(&acme_url, &org.ada).await;
    set_allowlist(&["127.0.0.0/33"]).await;
    let (status, message) = ping(org.ada.clone()).await;
    assert_eq!(status, 403);
    assert!(message.contains("127.0.0.0/33"), "{message}");
    db.cleanup().await;
}
