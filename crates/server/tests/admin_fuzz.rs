//! Property-based testing of the admin API from its own OpenAPI document with PyPI
//! `schemathesis` (pinned in scripts/install-peers.sh): thousands of generated requests —
//! valid and invalid paths, queries and bodies, and stateful sequences — must never get a
//! server error, and every answer must match the document (status codes, content types,
//! response schemas, headers). `positive_data_acceptance` is left out: opaque cursors and
//! rules richer than a schema (secret names, enum-like query values) make some schema-valid
//! requests rightly answered 4xx.

mod support;

use std::time::Duration;

use reqwest::Method as M;
use serde_json::json;
use support::TestGateway;
use support::admin::{Api, PLATFORM};
use support::peers::peers;
use support::tenancy::{Backend, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_holds_up_to_schemathesis() {
    let Some(peers) = peers("the_admin_api_holds_up_to_schemathesis") else {
        return;
    };
    let schemathesis = peers.venv.join("bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "schemathesis is missing from {}; rerun scripts/install-peers.sh",
        peers.venv.display()
    );
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut gw =
        TestGateway::start("", &format!("{}[admin]\ntoken = {PLATFORM:?}\n", db.toml())).await;
    let made = Api::new(&gw.base)
        .send(
            Some(PLATFORM),
            M::POST,
            "/tenants",
            Some(json!({"id": "acme", "name": "Acme", "owner": "root@acme.com"})),
        )
        .await;
    assert_eq!(made.status, 201);
    let run = tokio::process::Command::new(&schemathesis)
        .args([
            "run",
            &format!("{}/admin/v1/openapi.json", gw.base),
            "--header",
            &format!("Authorization: Bearer {PLATFORM}"),
            "--max-examples",
            "30",
            "--workers",
            "2",
            "--seed",
            "20261201",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("schemathesis finishes within 5 minutes")
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    gw.stop().await;
    db.cleanup().await;
}
