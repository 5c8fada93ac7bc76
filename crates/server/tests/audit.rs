//! The audit log through the real server: calls, denials, refused credentials and
//! cross-tenant attempts land in the right tenant's chain (never the arguments, never a
//! secret); `switchboard audit verify` passes an intact log and catches an edited record on
//! SQLite and PostgreSQL; `audit export` prints JSON lines; and a gateway stopped with
//! SIGTERM under load writes every record of every answered call.

#![allow(deprecated)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::tenancy::{Backend, TestDb, provision};
use support::{
    Era, TestGateway, call, connect, connect_as, mcp_error, stdio_demo, switchboard_bin,
};
use switchboard_domain::audit::{AuditKind, AuditRecord};

fn upstreams() -> String {
    format!(
        "{}{}",
        stdio_demo("alpha", None, "tenants = [\"acme\"]"),
        stdio_demo("shared", None, ""),
    )
}

async fn records(store: &switchboard_store::Store, chain: &str) -> Vec<AuditRecord> {
    store.audit_page(chain, 0, 10_000).await.unwrap()
}

fn cli(args: &[&str], db: &TestDb) -> std::process::Output {
    std::process::Command::new(switchboard_bin())
        .args(args)
        .env("SWITCHBOARD_DATABASE_URL", &db.url)
        .env("SWITCHBOARD_MASTER_KEY", support::TEST_MASTER_KEY)
        .env("SWITCHBOARD_LOG", "warn")
        .output()
        .expect("run switchboard")
}

async fn the_audit_trail_records_each_tenant_s_activity(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let mut gw = TestGateway::start("", &format!("{}{}", db.toml(), upstreams())).await;
    let acme = format!("{}/t/acme/mcp", gw.base);
    let (ada, _) = connect_as(&acme, Era::Legacy, &org.ada).await;
    ada.call_tool(call(
        "shared__echo",
        json!({"text": "secret-argument-value"}),
    ))
    .await
    .unwrap();
    // A denied tool (ada's group is denied slow_count) answers "unknown" and is audited.
    let err = mcp_error(
        ada.call_tool(call("alpha__slow_count", json!({"steps": 1})))
            .await
            .unwrap_err(),
    );
    assert!(err.message.contains("unknown tool"));
    // A wrong key and another tenant's key on acme's endpoint.
    for bearer in ["sb_aaaaaaaaaaaa_wrong", org.gus.as_str()] {
        let status = reqwest::Client::new()
            .post(&acme)
            .bearer_auth(bearer)
            .header("user-agent", "audit-test/1.0")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_client_error(), "{status}");
    }
    // A hostile 10 KB tenant name: refused, recorded in the platform chain, bounded.
    let hostile = format!("{}/t/{}/mcp", gw.base, "a".repeat(10_000));
    let status = reqwest::Client::new()
        .post(&hostile)
        .bearer_auth(&org.ada)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 400);
    let (gus, _) = connect_as(&format!("{}/t/globex/mcp", gw.base), Era::Modern, &org.gus).await;
    gus.call_tool(call("shared__echo", json!({"text": "g"})))
        .await
        .unwrap();
    drop((ada, gus));
    gw.stop().await; // flushes the audit log

    let acme_log = records(&store, "acme").await;
    let kinds: Vec<_> = acme_log.iter().map(|r| r.event.kind).collect();
    let call = acme_log
        .iter()
        .find(|r| r.event.kind == AuditKind::Call)
        .expect("ada's call is recorded");
    assert_eq!(call.event.actor, "user:ada@acme.com");
    assert_eq!(call.event.credential, org.ada_key_id);
    assert_eq!(call.event.target, "shared/echo");
    assert_eq!(call.event.outcome, "ok");
    let detail: Value = serde_json::from_str(&call.event.detail).unwrap();
    assert_eq!(detail["item"], "tool");
    assert_eq!(detail["arguments_sha256"].as_str().unwrap().len(), 32);
    assert!(detail["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(detail["ip"], "127.0.0.1");
    let denied = acme_log
        .iter()
        .find(|r| r.event.kind == AuditKind::Decision)
        .expect("the denial is recorded");
    assert_eq!(
        (denied.event.target.as_str(), denied.event.outcome.as_str()),
        ("alpha/slow_count", "denied")
    );
    assert!(!denied.event.reason.is_empty());
    assert!(kinds.contains(&AuditKind::AuthRefused), "{kinds:?}");
    let cross = acme_log
        .iter()
        .find(|r| r.event.kind == AuditKind::CrossTenant)
        .expect("gus's attempt is recorded in the chain of the tenant he tried");
    assert!(cross.event.target.ends_with("/t/acme/mcp"));
    // Never an argument or a credential in any record.
    let everything = format!("{acme_log:?}{:?}", records(&store, "globex").await);
    assert!(!everything.contains("secret-argument-value"));
    assert!(!everything.contains(&org.gus) && !everything.contains(&org.ada));
    let platform = records(&store, "_platform").await;
    assert_eq!(platform.len(), 1, "{platform:?}");
    assert_eq!(platform[0].event.kind, AuditKind::AuthRefused);
    assert_eq!(
        platform[0].event.target.chars().count(),
        switchboard_domain::names::MAX_RECORDED_NAME
    );
    assert!(
        platform[0].event.reason.len() < 1_000,
        "{}",
        platform[0].event.reason
    );
    // globex's chain holds gus's call only: nothing of acme's.
    let globex_log = records(&store, "globex").await;
    assert_eq!(globex_log.len(), 1);
    assert_eq!(globex_log[0].event.actor, "user:gus@globex.com");

    // The CLI: intact, exported, then tampered with and caught.
    let out = cli(&["audit", "verify"], &db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("acme: {} records, chain intact", acme_log.len())),
        "{stdout}"
    );
    let out = cli(&["audit", "export", "--tenant", "acme"], &db);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), acme_log.len());
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["tenant"], "acme");
    tamper(&db, backend, &call.seq.to_string()).await;
    let out = cli(&["audit", "verify"], &db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("acme: BROKEN: record {} was edited", call.seq)),
        "{stdout}"
    );
    assert!(
        stdout.contains("globex: 1 records, chain intact"),
        "{stdout}"
    );
    db.cleanup().await;
}

/// Edits acme's record `seq` around the append-only trigger, as a database admin could.
async fn tamper(db: &TestDb, backend: Backend, seq: &str) {
    use sqlx::Connection;
    let edit = format!(
        "UPDATE audit_events SET outcome = 'error' WHERE tenant_id = 'acme' AND seq = {seq}"
    );
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            for sql in ["DROP TRIGGER audit_events_no_update".to_owned(), edit] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            for sql in [
                "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only".to_owned(),
                edit,
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn audit_trail_on_sqlite() {
    the_audit_trail_records_each_tenant_s_activity(Backend::Sqlite).await;
}

#[tokio::test]
async fn audit_trail_on_postgres() {
    the_audit_trail_records_each_tenant_s_activity(Backend::Postgres).await;
}

/// A NUL in a record or a usage cell (an upstream may name a tool so) is stored as U+FFFD:
/// PostgreSQL cannot store NUL in text, and an audit batch that can never be written would
/// fill the backlog until every request of every tenant is refused (a usage rollup, hold
/// back every tenant's usage).
async fn a_nul_character_stalls_neither_the_audit_log_nor_usage(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let log = switchboard_governance::AuditLog::start(store.clone(), Default::default());
    log.record(switchboard_domain::audit::AuditEvent {
        tenant: Some(switchboard_domain::tenancy::TenantId::new("acme").unwrap()),
        at_ms: 1,
        kind: AuditKind::Call,
        actor: "user:ada@acme.com".into(),
        credential: "k1".into(),
        target: "evil/to\0ol".into(),
        outcome: "error".into(),
        reason: "upstream said \0".into(),
        detail: "{}".into(),
    });
    tokio::time::timeout(Duration::from_secs(10), log.flush())
        .await
        .expect("the record is written, not retried forever");
    assert_eq!(log.stats().write_errors, 0);
    let written = records(&store, "acme").await;
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].event.target, "evil/to\u{FFFD}ol");
    assert_eq!(written[0].event.reason, "upstream said \u{FFFD}");
    assert_eq!(store.verify_audit("acme").await.unwrap(), Ok(1));
    // The same for the usage rollups, which every tenant's calls share.
    let meter = switchboard_governance::Meter::start(store.clone(), Default::default());
    let acme = switchboard_domain::tenancy::TenantId::new("acme").unwrap();
    let who = switchboard_domain::tenancy::Identity::Anonymous;
    // The current hour: the meter's own loop prunes rollups older than its retention, so
    // cells of 1970 could vanish between the flush and the report.
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hour = switchboard_domain::usage::hour_start(unix_now);
    for item in ["to\0ol", "to\0ol", "echo"] {
        meter.record(
            switchboard_governance::CallCell {
                tenant: &acme,
                hour,
                principal: &who,
                credential: "",
                server: "evil",
                kind: switchboard_domain::tenancy::ItemKind::Tool,
                item,
            },
            false,
            Duration::from_millis(1),
            1,
            1,
        );
    }
    meter.flush().await;
    assert_eq!(meter.stats().write_errors, 0);
    assert_eq!(meter.stats().written_cells, 2);
    let rows = store
        .tenant(&acme)
        .usage_report(0, i64::MAX, &[switchboard_store::UsageGroup::Tool])
        .await
        .unwrap();
    let calls: Vec<(String, u64)> = rows
        .iter()
        .map(|r| (r.group.join("/"), r.counters.calls))
        .collect();
    assert!(
        calls.contains(&("evil/tool/to\u{FFFD}ol".to_owned(), 2)),
        "{calls:?}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_nul_character_stalls_neither_the_audit_log_nor_usage_on_sqlite() {
    a_nul_character_stalls_neither_the_audit_log_nor_usage(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_nul_character_stalls_neither_the_audit_log_nor_usage_on_postgres() {
    a_nul_character_stalls_neither_the_audit_log_nor_usage(Backend::Postgres).await;
}

/// Renames the audit table away (every insert fails) or back.
async fn audit_table_reachable(db: &TestDb, reachable: bool) {
    use sqlx::Connection;
    let (from, to) = if reachable {
        ("audit_events_gone", "audit_events")
    } else {
        ("audit_events", "audit_events_gone")
    };
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE {from} RENAME TO {to}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

/// A POST with a wrong key to acme's endpoint: refused (and recorded), or held back.
async fn wrong_key(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .bearer_auth("sb_aaaaaaaaaaaa_wrong")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_full_audit_backlog_holds_requests_back_and_loses_nothing() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    provision(&store).await;
    // The smallest backlog allowed: 100 records.
    let audit = "[audit]\nqueue_capacity = 100\nmax_wait_ms = 300\nflush_interval_ms = 10\n";
    let gw = TestGateway::start("", &format!("{}{audit}{}", db.toml(), upstreams())).await;
    let acme = format!("{}/t/acme/mcp", gw.base);
    // The database stops taking audit records: 100 refusals fill the backlog.
    audit_table_reachable(&db, false).await;
    for _ in 0..100 {
        assert_eq!(wrong_key(&acme).await.status(), 401);
    }
    // The next request waits for room (300 ms), then is turned away, not served unrecorded.
    let started = std::time::Instant::now();
    let held = wrong_key(&acme).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited for room"
    );
    assert_eq!(held.status(), 503);
    assert_eq!(held.headers()["retry-after"], "1");
    let body: Value = held.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32028, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("audit log cannot keep up"), "{message}");
    // The database is back: the held records are written and requests are served again.
    audit_table_reachable(&db, true).await;
    assert!(
        support::eventually_async(Duration::from_secs(20), || async {
            wrong_key(&acme).await.status() == 401
        })
        .await,
        "requests are admitted again once the backlog drains"
    );
    assert!(
        support::eventually_async(Duration::from_secs(20), || async {
            records(&store, "acme").await.len() >= 101
        })
        .await
    );
    let written = records(&store, "acme").await;
    assert!(
        written
            .iter()
            .all(|r| r.event.kind == AuditKind::AuthRefused),
        "{written:?}"
    );
    assert_eq!(
        store.verify_audit("acme").await.unwrap(),
        Ok(written.len() as i64)
    );
}

#[tokio::test]
async fn no_record_is_lost_when_the_gateway_is_stopped_under_load() {
    switchboard_mcp::install_crypto_provider();
    let dir = support::temp_dir("audit-sigterm");
    let config = dir.join("gateway.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nstartup_wait_ms = 10000\n{}",
            dir.display().to_string(),
            stdio_demo("demo", None, "")
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(switchboard_bin())
        .args(["serve", "--config", &config.display().to_string()])
        .env("SWITCHBOARD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read the log as it comes: a full pipe would block the gateway.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr_pipe, &mut text).await;
        text
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    assert!(
        support::eventually_async(Duration::from_secs(20), || async {
            reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await,
        "gateway ready"
    );
    // Eight clients call as fast as they can; SIGTERM arrives in the middle.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = url.clone();
        let answered = answered.clone();
        load.spawn(async move {
            let (client, _) = connect(&url, Era::Legacy).await;
            let one = || {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    client.call_tool(call("demo__echo", json!({"text": "load"}))),
                )
            };
            while matches!(one().await, Ok(Ok(_))) {
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the gateway stops")
        .unwrap();
    assert!(status.success(), "{status}");
    tokio::time::timeout(Duration::from_secs(30), async {
        while load.join_next().await.is_some() {}
    })
    .await
    .expect("every client notices the gateway is gone");
    let answered = answered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(answered > 50, "only {answered} calls answered");

    let store = switchboard_store::Store::connect(&format!(
        "sqlite://{}",
        dir.join("switchboard.db").display()
    ))
    .await
    .unwrap();
    let calls = records(&store, "default")
        .await
        .into_iter()
        .filter(|r| r.event.kind == AuditKind::Call && r.event.outcome == "ok")
        .count() as u64;
    eprintln!("{calls} call records for {answered} answered calls");
    // Every answered call is recorded; calls finished while stopping may be recorded without
    // their answer reaching the client.
    assert!(
        calls >= answered && calls <= answered + 8,
        "{calls} records for {answered} answered calls"
    );
    assert!(store.verify_audit("default").await.unwrap().is_ok());
    let stderr = tokio::time::timeout(Duration::from_secs(10), stderr)
        .await
        .expect("the log ends with the gateway")
        .unwrap();
    assert!(stderr.contains("audit log flushed"), "{stderr}");
}
