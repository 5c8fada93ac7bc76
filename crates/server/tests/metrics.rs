//! `/metrics` through the real server: scraped and parsed line by line; calls, latency,
//! denials and refusals counted per tenant; a tenant's credential cannot read the operator's
//! metrics (which name every tenant's servers and tools) when a metrics token is set.

#![allow(deprecated)]

mod support;

use serde_json::json;
use support::tenancy::{Backend, TestDb, provision};
use support::{Era, TestGateway, call, connect_as, stdio_demo};

const TOKEN: &str = "scrape-secret-0123456789";

/// `(name, labels, value)` of every sample line; panics on a line that is not one.
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().expect("a numeric value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            (name.to_owned(), labels.to_owned(), value)
        })
        .collect()
}

fn value(samples: &[(String, String, f64)], name: &str, must: &[&str]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| n == name && must.iter().all(|m| labels.contains(m)))
        .map(|(_, _, v)| *v)
}

#[tokio::test]
async fn metrics_are_scraped_per_tenant_and_only_with_the_metrics_token() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let config = format!(
        "{}[metrics]\ntoken = {TOKEN:?}\n{}{}",
        db.toml(),
        stdio_demo("alpha", None, "tenants = [\"acme\"]"),
        stdio_demo("shared", None, "")
    );
    let gw = TestGateway::start("", &config).await;
    let acme = format!("{}/t/acme/mcp", gw.base);
    let (ada, _) = connect_as(&acme, Era::Legacy, &org.ada).await;
    ada.call_tool(call("shared__echo", json!({"text": "x"})))
        .await
        .unwrap();
    assert!(
        ada.call_tool(call("alpha__slow_count", json!({"steps": 1})))
            .await
            .is_err()
    );
    let cross = reqwest::Client::new()
        .post(&acme)
        .bearer_auth(&org.gus)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);

    let url = format!("{}/metrics", gw.base);
    let http = reqwest::Client::new();
    // No token, or a tenant's credential: refused.
    for bearer in [None, Some(org.gus.as_str()), Some(org.root.as_str())] {
        let mut request = http.get(&url);
        if let Some(b) = bearer {
            request = request.bearer_auth(b);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let text = response.text().await.unwrap();
        assert!(!text.contains("acme"), "{text}");
    }
    let response = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let all = samples(&text);
    let echo = [
        "tenant=\"acme\"",
        "server=\"shared\"",
        "item=\"tool\"",
        "name=\"echo\"",
    ];
    let mut ok = echo.to_vec();
    ok.push("outcome=\"ok\"");
    assert_eq!(
        value(&all, "switchboard_calls_total", &ok),
        Some(1.0),
        "{text}"
    );
    let mut count = echo.to_vec();
    count.push("le=\"+Inf\"");
    assert_eq!(
        value(&all, "switchboard_call_duration_seconds_bucket", &count),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&all, "switchboard_denials_total", &["tenant=\"acme\""]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &all,
            "switchboard_auth_refusals_total",
            &["tenant=\"acme\"", "kind=\"cross_tenant\""]
        ),
        Some(1.0)
    );
    assert!(value(&all, "switchboard_sessions", &[]).unwrap() >= 1.0);
    assert!(value(&all, "switchboard_audit_backlog", &[]).is_some());
    // The pipelines' own counters: the audit writer's, the meter's, the limiter's (no span
    // exporter configured here: no span series).
    for name in [
        "switchboard_audit_written_total",
        "switchboard_audit_write_errors_total",
        "switchboard_usage_pending_cells",
        "switchboard_usage_written_cells_total",
        "switchboard_rate_limited_total",
        "switchboard_rate_limit_store_errors_total",
        "switchboard_rate_limit_local_fallbacks_total",
    ] {
        assert!(value(&all, name, &[]).is_some(), "{name} in {text}");
    }
    assert_eq!(
        value(&all, "switchboard_audit_write_errors_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&all, "switchboard_usage_write_errors_total", &[]),
        Some(0.0)
    );
    assert!(!text.contains("switchboard_spans_exported_total"), "{text}");
    // globex did nothing: no series of its own.
    assert!(!text.contains("tenant=\"globex\""), "{text}");
    db.cleanup().await;
}

/// A client chooses the URI of a resource it reads: a 100 KB one leaves a bounded name in
/// the metrics (a label per series), the audit records (call and denial) and the usage cell.
#[tokio::test]
async fn a_long_name_chosen_by_a_client_is_recorded_bounded() {
    use switchboard_domain::audit::AuditKind;
    use switchboard_domain::names::MAX_RECORDED_NAME;

    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let config = format!(
        "{}[metrics]\ntoken = {TOKEN:?}\n[usage]\nflush_interval_ms = 100\n{}",
        db.toml(),
        stdio_demo("shared", None, "")
    );
    let gw = TestGateway::start("", &config).await;
    let acme_url = format!("{}/t/acme/mcp", gw.base);
    let long = format!("demo://{}", "x".repeat(100_000));
    // The tenant's admin may read any resource (the read goes upstream, which knows no such
    // resource); ada's member role covers no resources (denied, and recorded as such).
    for bearer in [&org.root, &org.ada] {
        let (client, _) = connect_as(&acme_url, Era::Legacy, bearer).await;
        let read = rmcp::model::ReadResourceRequestParams::new(format!("shared+{long}"));
        assert!(
            client.read_resource(read).await.is_err(),
            "no such resource"
        );
    }
    let recorded = &long[..MAX_RECORDED_NAME];

    let text = reqwest::Client::new()
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!("name=\"{recorded}\"")),
        "the read is counted under its cut name"
    );
    let longest = text.lines().map(str::len).max().unwrap();
    assert!(longest < 2 * MAX_RECORDED_NAME, "a {longest}-byte line");

    let target = format!("shared/{recorded}");
    let both_recorded = || async {
        let records = store.audit_page("acme", 0, 1000).await.unwrap();
        [AuditKind::Call, AuditKind::Decision].iter().all(|kind| {
            records
                .iter()
                .any(|r| r.event.kind == *kind && r.event.target == target)
        })
    };
    assert!(
        support::eventually_async(std::time::Duration::from_secs(10), both_recorded).await,
        "the call's and the denial's records name the cut URI"
    );
    for r in store.audit_page("acme", 0, 1000).await.unwrap() {
        assert!(
            r.event.target.len() <= 1024,
            "a {}-byte target",
            r.event.target.len()
        );
        assert!(
            r.event.detail.len() <= 4096,
            "a {}-byte detail",
            r.event.detail.len()
        );
    }
    let acme = switchboard_domain::tenancy::TenantId::new("acme").unwrap();
    let usage_cut = || async {
        let rows = store
            .tenant(&acme)
            .usage_report(0, i64::MAX, &[switchboard_store::UsageGroup::Tool])
            .await
            .unwrap();
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r.group.last().is_some_and(|item| item == recorded))
    };
    assert!(
        support::eventually_async(std::time::Duration::from_secs(10), usage_cut).await,
        "the usage cell names the cut URI"
    );
}
