//! The official MCP conformance suite (`@modelcontextprotocol/conformance`) against the
//! gateway, with the dual-era Python fixture behind it (unprefixed, per-session isolation so
//! sampling, elicitation and logging reach the suite's client). Every scenario the 2025-11-25
//! and 2026-07-28 revisions require must pass, except the documented baseline in
//! `tests/conformance/expected-failures.yaml`.
//!
//! Needs the peers from `scripts/install-peers.sh`; skips with a message otherwise.

mod support;

use support::peers::*;
use support::*;

async fn run_suite(peers: &Peers, url: &str, requirements: &str) -> (bool, String) {
    let baseline = repo_root().join("tests/conformance/expected-failures.yaml");
    let args = vec![
        peers.conformance.clone(),
        "server".into(),
        "--url".into(),
        url.to_owned(),
        "--requirements".into(),
        requirements.into(),
        "--expected-failures".into(),
        baseline.display().to_string(),
        "--timeout".into(),
        "15000".into(),
    ];
    match run_client(&peers.node22, &args, &[]).await {
        Ok(out) => (true, out),
        Err(out) => (false, out),
    }
}

fn totals(output: &str) -> String {
    output
        .lines()
        .filter(|l| l.contains("Total:") || l.contains("Baseline") || l.contains("✗"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_conformance_suite_passes_through_the_gateway() {
    let Some(peers) = peers("official_conformance_suite_passes_through_the_gateway") else {
        return;
    };
    let (_fixture, port) = fixture_http(&peers).await;
    let gw = TestGateway::start(
        "",
        &http_upstream(
            "fixture",
            "streamable-http",
            &format!("http://127.0.0.1:{port}/mcp"),
            "prefix = \"\"\nisolation = \"per-session\"",
        ),
    )
    .await;
    let mut failures = Vec::new();
    for requirements in ["2025-11-25", "2026-07-28"] {
        let (ok, output) = run_suite(&peers, &gw.mcp_url(), requirements).await;
        eprintln!(
            "conformance --requirements {requirements}:\n{}",
            totals(&output)
        );
        if !ok {
            failures.push(format!("--requirements {requirements}:\n{output}"));
        }
    }
    assert!(
        failures.is_empty(),
        "conformance failures beyond the baseline:\n{}",
        failures.join("\n\n")
    );
}
