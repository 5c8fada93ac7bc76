//! The admin API through the real server, on SQLite and PostgreSQL: a platform admin sets up
//! tenants; a tenant owner runs their organisation with their own API key; what they create
//! works on the MCP endpoint at once (and a revoked key fails at once); another tenant's
//! objects are 404; roles bound what each caller may do; `If-Match` guards against lost
//! updates; lists page with cursors; every change lands in the tenant's audit chain without
//! a secret. (The audit, CLI and OpenAPI parts are in `admin_audit.rs` and `admin_cli.rs`.)

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::tenancy::{Backend, TestDb};
use support::{Era, TestGateway, connect_as, stdio_demo, tool_names, try_connect};
use switchboard_domain::audit::AuditKind;

use support::admin::{Api, PLATFORM, code};

fn upstreams() -> String {
    format!(
        "{}{}",
        stdio_demo("alpha", None, ""),
        stdio_demo("shared", None, "")
    )
}

async fn an_organisation_is_run_through_the_admin_api(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let extra = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n{}",
        db.toml(),
        upstreams()
    );
    let mut gw = TestGateway::start("", &extra).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: gw.base.clone(),
    };
    let p = Some(PLATFORM);
    use Method as M;

    // Credentials: none, a wrong platform token, a wrong key — all 401 in the error shape.
    let none = api.send(None, M::GET, "/me", None).await;
    assert_eq!(none.status, 401);
    assert_eq!(code(&none), "unauthorized");
    assert!(none.headers.contains_key("www-authenticate"));
    assert_eq!(none.headers["cache-control"], "no-store");
    for bad in [
        "sba_aaaaaaaaaaaa_nope",
        "sb_aaaaaaaaaaaa_nope",
        "not-a-token",
    ] {
        assert_eq!(
            api.send(Some(bad), M::GET, "/me", None).await.status,
            401,
            "{bad}"
        );
    }
    let me = api.send(p, M::GET, "/me", None).await;
    assert_eq!(me.body["kind"], "platform");

    // The platform admin creates two tenants with their owners.
    let acme = api
        .send(
            p,
            M::POST,
            "/tenants",
            Some(json!({"id": "acme", "name": "Acme", "owner": "root@acme.com"})),
        )
        .await;
    assert_eq!(acme.status, 201, "{}", acme.body);
    assert_eq!(acme.headers["etag"], "\"1\"");
    assert_eq!(acme.headers["location"], "/admin/v1/tenants/acme");
    let globex = api
        .send(p, M::POST, "/tenants", Some(json!({"id": "globex", "name": "Globex", "owner": "boss@globex.com", "plan": "pro"})))
        .await;
    assert_eq!(globex.status, 201);
    let again = api
        .send(
            p,
            M::POST,
            "/tenants",
            Some(json!({"id": "acme", "name": "Again"})),
        )
        .await;
    assert_eq!((again.status.as_u16(), code(&again)), (409, "conflict"));
    let bad_id = api
        .send(
            p,
            M::POST,
            "/tenants",
            Some(json!({"id": "Acme Corp!", "name": "x"})),
        )
        .await;
    assert_eq!(
        (
            bad_id.status.as_u16(),
            bad_id.body["error"]["field"].as_str()
        ),
        (422, Some("id"))
    );
    let typo = api
        .send(
            p,
            M::POST,
            "/tenants",
            Some(json!({"id": "x", "nmae": "x"})),
        )
        .await;
    assert_eq!(
        (typo.status.as_u16(), typo.body["error"]["field"].as_str()),
        (422, Some("nmae"))
    );
    let bad_cidr = api
        .send(
            p,
            M::POST,
            "/tenants",
            Some(json!({"id": "x", "name": "x", "settings": {"ipAllowlist": ["10.0.0.0/33"]}})),
        )
        .await;
    assert_eq!(bad_cidr.body["error"]["field"], "settings.ipAllowlist");
    let not_json = api
        .http
        .post(format!("{}/admin/v1/tenants", gw.base))
        .bearer_auth(PLATFORM)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);

    // A key for acme's owner, made by the platform admin: shown once, never listed.
    let made = api
        .send(
            p,
            M::POST,
            "/tenants/acme/api-keys",
            Some(json!({"name": "root laptop", "owner": {"type": "user", "id": "root@acme.com"}})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let root = made.body["secret"].as_str().unwrap().to_owned();
    assert!(root.starts_with("sb_"));
    let r = Some(root.as_str());
    let listed = api.send(r, M::GET, "/tenants/acme/api-keys", None).await;
    assert!(
        !listed.body.to_string().contains(&root[15..]),
        "a listing never shows a secret"
    );

    // The owner runs the tenant with that key.
    let me = api.send(r, M::GET, "/me", None).await;
    assert_eq!(
        (me.body["kind"].as_str(), me.body["tenant"].as_str()),
        (Some("tenant"), Some("acme"))
    );
    assert_eq!(
        api.send(
            r,
            M::POST,
            "/tenants/acme/members",
            Some(json!({"user": "ada@acme.com"}))
        )
        .await
        .status,
        201
    );
    let group = api
        .send(
            r,
            M::POST,
            "/tenants/acme/groups",
            Some(json!({"name": "eng", "members": ["ada@acme.com"]})),
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.body);
    let stranger = api
        .send(
            r,
            M::POST,
            "/tenants/acme/groups",
            Some(json!({"name": "ops", "members": ["boss@globex.com"]})),
        )
        .await;
    assert_eq!(
        (
            stranger.status.as_u16(),
            stranger.body["error"]["field"].as_str()
        ),
        (422, Some("members"))
    );
    let grant = api
        .send(
            r,
            M::POST,
            "/tenants/acme/grants",
            Some(json!({"grantee": {"type": "group", "id": "eng"}, "target": "alpha"})),
        )
        .await;
    assert_eq!(grant.status, 201, "{}", grant.body);
    let ada_key = api
        .send(
            r,
            M::POST,
            "/tenants/acme/api-keys",
            Some(json!({"name": "ada", "owner": {"type": "user", "id": "ada@acme.com"}})),
        )
        .await;
    let ada = ada_key.body["secret"].as_str().unwrap().to_owned();
    let ada_id = ada_key.body["key"]["id"].as_str().unwrap().to_owned();

    // What the owner just made works on the MCP endpoint at once: ada sees alpha, not shared.
    let mcp = format!("{}/t/acme/mcp", gw.base);
    let (client, _) = connect_as(&mcp, Era::Modern, &ada).await;
    let names = tool_names(&client).await;
    assert!(names.iter().any(|n| n.starts_with("alpha__")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("shared__")),
        "{names:?}"
    );
    client.cancel().await.ok();

    // Servers and their health: all of them for the owner, what ada may use for ada.
    let all = api.send(r, M::GET, "/tenants/acme/servers", None).await;
    let names_of = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names_of(&all.body), ["alpha", "shared"], "{}", all.body);
    assert_eq!(all.body["items"][0]["status"], "ready");
    assert!(all.body["items"][0]["tools"].as_u64().unwrap() > 0);
    let hers = api
        .send(Some(&ada), M::GET, "/tenants/acme/servers", None)
        .await;
    assert_eq!(names_of(&hers.body), ["alpha"]);

    // Another tenant's objects are 404 — never 403 — and platform operations are 403.
    for path in [
        "/tenants/globex",
        "/tenants/globex/members",
        "/tenants/globex/api-keys",
        "/tenants/nope",
    ] {
        let a = api.send(r, M::GET, path, None).await;
        assert_eq!((a.status.as_u16(), code(&a)), (404, "not_found"), "{path}");
    }
    let listed = api.send(r, M::GET, "/tenants", None).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        1,
        "an owner lists only their tenant"
    );
    assert_eq!(
        api.send(r, M::DELETE, "/tenants/globex", None).await.status,
        404
    );
    assert_eq!(
        api.send(r, M::DELETE, "/tenants/acme", None).await.status,
        403
    );
    assert_eq!(
        api.send(
            r,
            M::POST,
            "/tenants",
            Some(json!({"id": "evil", "name": "x"}))
        )
        .await
        .status,
        403
    );
    let plan = api
        .send(
            r,
            M::PATCH,
            "/tenants/acme",
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(plan.status, 403);
    assert!(
        plan.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plan")
    );
    let limits = api
        .send(
            r,
            M::PATCH,
            "/tenants/acme",
            Some(json!({"settings": {"rateLimits": {"user": "unlimited"}}})),
        )
        .await;
    assert_eq!(
        limits.status, 403,
        "a tenant cannot lift its own rate limits"
    );

    // A member reads and manages only their own keys; no admin powers.
    let a = Some(ada.as_str());
    assert_eq!(
        api.send(
            a,
            M::POST,
            "/tenants/acme/members",
            Some(json!({"user": "eve@acme.com"}))
        )
        .await
        .status,
        403
    );
    let own = api.send(a, M::GET, "/tenants/acme/api-keys", None).await;
    let ids: Vec<&str> = own.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ada_id.as_str()]);
    let for_root = api
        .send(
            a,
            M::POST,
            "/tenants/acme/api-keys",
            Some(json!({"name": "x", "owner": {"type": "user", "id": "root@acme.com"}})),
        )
        .await;
    assert_eq!(for_root.status, 403);
    let mine = api
        .send(
            a,
            M::POST,
            "/tenants/acme/api-keys",
            Some(json!({"name": "ada 2"})),
        )
        .await;
    assert_eq!(
        mine.status, 201,
        "a member creates keys for themselves: {}",
        mine.body
    );
    // An admin cannot make owners.
    assert_eq!(
        api.send(
            r,
            M::POST,
            "/tenants/acme/members",
            Some(json!({"user": "adm@acme.com", "role": "admin"}))
        )
        .await
        .status,
        201
    );
    let adm_key = api
        .send(
            r,
            M::POST,
            "/tenants/acme/api-keys",
            Some(json!({"name": "adm", "owner": {"type": "user", "id": "adm@acme.com"}})),
        )
        .await;
    let adm = adm_key.body["secret"].as_str().unwrap().to_owned();
    let promote = api
        .send(
            Some(&adm),
            M::PATCH,
            "/tenants/acme/members/ada@acme.com",
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(promote.status, 403);
    let demote_root = api
        .send(
            Some(&adm),
            M::DELETE,
            "/tenants/acme/members/root@acme.com",
            None,
        )
        .await;
    assert_eq!(demote_root.status, 403);

    // Optimistic concurrency on tenants.
    let renamed = api
        .send_with(
            r,
            M::PATCH,
            "/tenants/acme",
            Some(json!({"name": "Acme Inc"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.headers["etag"], "\"2\"");
    let stale = api
        .send_with(
            r,
            M::PATCH,
            "/tenants/acme",
            Some(json!({"name": "Lost update"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (stale.status.as_u16(), code(&stale)),
        (412, "precondition_failed")
    );

    // Revoking ada's key refuses it at once.
    assert_eq!(
        api.send(
            r,
            M::DELETE,
            &format!("/tenants/acme/api-keys/{ada_id}"),
            None
        )
        .await
        .status,
        204
    );
    let refused = try_connect(&mcp, Era::Modern, Some(&ada)).await;
    assert!(refused.is_err(), "a revoked key must be refused at once");

    // Suspension stops the tenant's admins too; resuming restores them.
    assert_eq!(
        api.send(p, M::POST, "/tenants/acme/suspend", None)
            .await
            .body["status"],
        "suspended"
    );
    let suspended = api.send(r, M::GET, "/me", None).await;
    assert_eq!(suspended.status, 403);
    assert!(
        suspended.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("suspended")
    );
    assert_eq!(
        api.send(p, M::POST, "/tenants/acme/resume", None)
            .await
            .status,
        200
    );
    assert_eq!(api.send(r, M::GET, "/me", None).await.status, 200);

    // Cursor paging and filters.
    let first = api.send(p, M::GET, "/tenants?limit=1", None).await;
    assert_eq!(first.body["items"][0]["id"], "acme");
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    let second = api
        .send(
            p,
            M::GET,
            &format!("/tenants?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second.body["items"][0]["id"], "globex");
    assert!(second.body.get("nextCursor").is_none());
    let pro = api.send(p, M::GET, "/tenants?plan=pro", None).await;
    assert_eq!(pro.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.send(p, M::GET, "/tenants?limit=0", None).await.status,
        422
    );
    assert_eq!(
        api.send(p, M::GET, "/tenants?cursor=%25%25", None)
            .await
            .status,
        400
    );
    assert_eq!(
        api.send(p, M::GET, "/tenants?colour=red", None)
            .await
            .status,
        400
    );
    assert_eq!(api.send(p, M::GET, "/nothing-here", None).await.status, 404);
    assert_eq!(api.send(p, M::PUT, "/tenants", None).await.status, 405);

    // Every change is in acme's audit chain, with before/after and never a secret.
    let store = gw.tenancy().store.clone();
    let ok = support::eventually_async(std::time::Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            store
                .audit_page("acme", 0, 1000)
                .await
                .unwrap()
                .iter()
                .any(|r| r.event.reason == "tenant.resume")
        }
    })
    .await;
    assert!(ok, "admin changes are audited");
    let records = store.audit_page("acme", 0, 1000).await.unwrap();
    let changes: Vec<&str> = records
        .iter()
        .filter(|r| r.event.kind == AuditKind::AdminChange)
        .map(|r| r.event.reason.as_str())
        .collect();
    for action in [
        "tenant.create",
        "member.add",
        "group.create",
        "grant.add",
        "api_key.create",
        "tenant.update",
        "api_key.revoke",
        "tenant.suspend",
    ] {
        assert!(
            changes.contains(&action),
            "{action} missing from {changes:?}"
        );
    }
    let update = records
        .iter()
        .find(|r| r.event.reason == "tenant.update")
        .unwrap();
    let detail: Value = serde_json::from_str(&update.event.detail).unwrap();
    assert_eq!(
        (
            detail["before"]["name"].as_str(),
            detail["after"]["name"].as_str()
        ),
        (Some("Acme"), Some("Acme Inc"))
    );
    assert_eq!(update.event.actor, "user:root@acme.com");
    for record in &records {
        for secret in [&root, &ada, &adm] {
            assert!(
                !record.event.detail.contains(&secret[15..]),
                "a secret leaked into the audit trail"
            );
        }
    }

    // The platform admin deletes a tenant; its members' keys die with it.
    assert_eq!(
        api.send(p, M::DELETE, "/tenants/acme", None).await.status,
        204
    );
    assert_eq!(api.send(r, M::GET, "/me", None).await.status, 401);

    gw.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_is_run_through_the_admin_api_on_sqlite() {
    an_organisation_is_run_through_the_admin_api(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_is_run_through_the_admin_api_on_postgres() {
    an_organisation_is_run_through_the_admin_api(Backend::Postgres).await;
}
