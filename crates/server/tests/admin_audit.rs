//! The audit trail through the admin API: newest first with a cursor, filters, streamed JSON
//! lines, verification; owners and admins only, another tenant's is 404, the platform chain
//! is the platform's.

mod support;

use reqwest::Method as M;
use serde_json::{Value, json};
use support::TestGateway;
use support::admin::{Api, PLATFORM};
use support::tenancy::{Backend, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_searched_exported_and_verified_through_the_api() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let gw = TestGateway::start("", &format!("{}[admin]\ntoken = {PLATFORM:?}\n", db.toml())).await;
    let api = Api::new(&gw.base);
    let p = Some(PLATFORM);
    for (tenant, owner) in [("acme", "root@acme.com"), ("globex", "boss@globex.com")] {
        let made = api
            .send(
                p,
                M::POST,
                "/tenants",
                Some(json!({"id": tenant, "name": tenant, "owner": owner})),
            )
            .await;
        assert_eq!(made.status, 201);
    }
    let root = api.user_key("acme", "root@acme.com").await;
    let r = Some(root.as_str());
    for user in ["ada@acme.com", "bob@acme.com", "cy@acme.com", "di@acme.com"] {
        assert_eq!(
            api.send(
                r,
                M::POST,
                "/tenants/acme/members",
                Some(json!({"user": user}))
            )
            .await
            .status,
            201
        );
    }
    let ada = api.user_key("acme", "ada@acme.com").await;
    let store = gw.tenancy().store.clone();
    let written = support::eventually_async(std::time::Duration::from_secs(10), || {
        let store = store.clone();
        async move { store.audit_page("acme", 0, 1000).await.unwrap().len() >= 7 }
    })
    .await;
    assert!(written);
    let records = store.audit_page("acme", 0, 1000).await.unwrap();
    let a = Some(ada.as_str());
    let mine = api.send(a, M::GET, "/me", None).await;
    assert_eq!(mine.status, 200);

    // The audit trail through the API: newest first with a cursor, filters, JSON lines,
    // verification; owners and admins only, another tenant's is 404.
    let first = api
        .send(
            r,
            M::GET,
            "/tenants/acme/audit?kind=admin.change&limit=3",
            None,
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let seqs: Vec<i64> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let second = api
        .send(
            r,
            M::GET,
            &format!("/tenants/acme/audit?kind=admin.change&limit=3&cursor={cursor}"),
            None,
        )
        .await;
    let next: Vec<i64> = second.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_i64().unwrap())
        .collect();
    assert!(next.iter().all(|s| *s < seqs[2]), "{next:?} after {seqs:?}");
    let by_root = api
        .send(
            r,
            M::GET,
            "/tenants/acme/audit?actor=user:root@acme.com&kind=admin.change",
            None,
        )
        .await;
    let items = by_root.body["items"].as_array().unwrap();
    assert!(
        !items.is_empty()
            && items
                .iter()
                .all(|i| i["actor"] == "user:root@acme.com" && i["kind"] == "admin.change")
    );
    let jsonl = api
        .http
        .get(format!(
            "{}/admin/v1/tenants/acme/audit?format=jsonl",
            gw.base
        ))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(jsonl.headers()["content-type"], "application/x-ndjson");
    let text = jsonl.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= records.len(), "every record exported");
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()),
        "oldest first"
    );
    let verified = api
        .send(r, M::GET, "/tenants/acme/audit/verify", None)
        .await;
    assert_eq!(verified.body["intact"], true, "{}", verified.body);
    assert_eq!(
        api.send(a, M::GET, "/tenants/acme/audit", None)
            .await
            .status,
        403,
        "members do not read the audit trail"
    );
    assert_eq!(
        api.send(r, M::GET, "/tenants/globex/audit", None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.send(r, M::GET, "/platform/audit", None).await.status,
        403
    );
    assert_eq!(
        api.send(p, M::GET, "/platform/audit?kind=auth.refused", None)
            .await
            .status,
        200
    );
    let bad = api
        .send(r, M::GET, "/tenants/acme/audit?kind=everything", None)
        .await;
    assert_eq!(
        (bad.status.as_u16(), bad.body["error"]["field"].as_str()),
        (422, Some("kind"))
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_a_tenants_old_records_and_the_chain_still_verifies() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let gw = TestGateway::start("", &format!("{}[admin]\ntoken = {PLATFORM:?}\n", db.toml())).await;
    let api = Api::new(&gw.base);
    let p = Some(PLATFORM);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    // Retention is the platform's to set; a tenant owner cannot change it.
    let root = api.user_key("acme", "root@acme.com").await;
    let refused = api
        .send(
            Some(&root),
            M::PATCH,
            "/tenants/acme",
            Some(json!({"settings": {"auditRetentionDays": 1}})),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let set = api
        .send(
            p,
            M::PATCH,
            "/tenants/acme",
            Some(json!({"settings": {"auditRetentionDays": 1}})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    for user in ["ada@acme.com", "bob@acme.com"] {
        let added = api
            .send(
                p,
                M::POST,
                "/tenants/acme/members",
                Some(json!({"user": user})),
            )
            .await;
        assert_eq!(added.status, 201);
    }
    // The gateway writes its audit records in batches: wait for them all (at least four,
    // and no more arriving), so that none lands after the pruning below.
    let (mut written, mut steady) = (0, 0);
    for _ in 0..100 {
        let page = api.send(p, M::GET, "/tenants/acme/audit", None).await;
        let now = page.body["items"].as_array().map_or(0, Vec::len);
        steady = if now == written { steady + 1 } else { 0 };
        written = now;
        if written >= 4 && steady >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(written >= 4, "acme's admin changes are recorded");
    let audit = switchboard_governance::AuditLog::start(
        gw.tenancy().store.clone(),
        switchboard_governance::AuditOptions::default(),
    );
    // Two days from now, acme's records are past its one day; globex keeps everything
    // (no default retention).
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 2 * 86_400_000;
    let removed = switchboard_server::retention::prune_all(gw.tenancy(), &audit, 0, later)
        .await
        .unwrap();
    assert!(removed >= 4, "acme's records went: {removed}");
    audit.flush().await;
    let store = &gw.tenancy().store;
    assert!(store.audit_anchor("acme").await.unwrap().seq >= 4);
    assert_eq!(store.audit_anchor("globex").await.unwrap().seq, 0);
    for tenant in ["acme", "globex"] {
        let verified = api
            .send(p, M::GET, &format!("/tenants/{tenant}/audit/verify"), None)
            .await;
        assert_eq!(verified.body["intact"], true, "{tenant}: {}", verified.body);
    }
    // What remains of acme's chain says what retention did.
    let left = api
        .send(p, M::GET, "/tenants/acme/audit?order=asc", None)
        .await;
    let items = left.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", left.body);
    assert_eq!(items[0]["actor"], "system:retention");
    assert!(
        items[0]["detail"].to_string().contains("audit.prune"),
        "{}",
        items[0]
    );
}
