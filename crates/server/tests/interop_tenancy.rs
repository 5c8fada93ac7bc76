//! Tenancy with real third-party clients: every client kind of the interop matrix (official
//! Python and TypeScript clients, both eras, Streamable HTTP and legacy SSE) reaches two
//! tenants at once through one gateway — acme with an API key, globex with a JWT of the
//! gateway's own issuer — and each sees and calls only its own tenant's tools. Cross-tenant
//! attempts and header-less SSE clients without the `?token=` opt-in are refused.
//!
//! Needs the peers from `scripts/install-peers.sh`; skips with a message otherwise.

mod support;

use futures::StreamExt;
use support::peers::*;
use support::tenancy::{Backend, Org, TestDb, provision, tenant, user};
use support::{DEMO_TOOLS, TestGateway};
use switchboard_domain::tenancy::Identity;

/// One client process and whether the gateway must let it through.
struct Run {
    label: String,
    program: String,
    args: Vec<String>,
    refused: bool,
}

/// A gateway with acme (`alpha`, `shared`) and globex (`beta`, `shared`) on a fresh SQLite
/// database; `auth_extra` goes into `[auth]` (the section `TestDb::toml` ends with).
async fn start(auth_extra: &str) -> (TestGateway, Org) {
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let upstreams = support::tenancy::two_tenant_upstreams();
    let config = format!("{}{auth_extra}\n{upstreams}", db.toml());
    (TestGateway::start("", &config).await, org)
}

/// A token of the gateway's own issuer for gus@globex.com.
fn gus_jwt(gw: &TestGateway) -> String {
    let issuer = gw.tenancy().auth.issuer().expect("gateway issuer");
    let gus = Identity::User(user("gus@globex.com"));
    issuer
        .issue(&tenant("globex"), &gus, &gw.base, 600, "")
        .expect("token issued")
        .token
}

/// What a member of the tenant owning server `own` must see: `own__echo` and `shared__echo`
/// listed, none of `foreign`'s tools nor the `denied` ones, and `own__echo` answers.
fn checks(own: &str, foreign: &str, denied: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--expect-tool".into(),
        format!("{own}__echo"),
        "--expect-tool".into(),
        "shared__echo".into(),
    ];
    let foreign_tools = DEMO_TOOLS.iter().map(|t| format!("{foreign}__{t}"));
    for name in foreign_tools.chain(denied.iter().map(|d| d.to_string())) {
        args.extend(["--expect-absent".into(), name]);
    }
    args.extend([
        "--call".into(),
        format!("{own}__echo"),
        "--args".into(),
        format!(r#"{{"text":"hi {own}"}}"#),
        "--expect-text".into(),
        format!("hi {own}"),
    ]);
    args
}

/// An acme member (ada): alpha through group eng minus the denied `slow_count`.
fn acme_checks() -> Vec<String> {
    checks("alpha", "beta", &["alpha__slow_count"])
}

/// A globex member (gus).
fn globex_checks() -> Vec<String> {
    checks("beta", "alpha", &[])
}

/// `kind` on `url`, with `bearer` in the Authorization header when given.
fn run(kind: &ClientKind, what: &str, url: String, bearer: Option<&str>, checks: &[String]) -> Run {
    let mut args = kind.args.clone();
    args.extend(["--url".into(), url]);
    if let Some(b) = bearer {
        args.extend(["--header".into(), format!("Authorization: Bearer {b}")]);
    }
    args.extend(checks.iter().cloned());
    Run {
        label: format!("{} {what}", kind.label),
        program: kind.program.clone(),
        args,
        refused: false,
    }
}

fn refused(mut run: Run) -> Run {
    run.refused = true;
    run
}

/// What a client's failure output shows when the gateway refused it: the HTTP status as the
/// client words it, the JSON-RPC code (unauthenticated / forbidden) or the cross-tenant
/// message. Specific enough not to match a port number or a random credential.
const REFUSAL_SIGNS: [&str; 9] = [
    "401 Unauthorized",
    "403 Forbidden",
    "(401)",
    "(403)",
    "HTTP 401",
    "HTTP 403",
    "-32020",
    "-32021",
    "belongs to tenant",
];

/// Runs one client process; `Ok` with a PASS line when it behaved as the gateway must make it.
async fn execute(run: Run) -> Result<String, String> {
    let outcome = run_client(&run.program, &run.args, &[]).await;
    match (run.refused, outcome) {
        (false, Ok(_)) => Ok(format!("PASS {}", run.label)),
        (false, Err(e)) => Err(format!("FAIL {}: {e}", run.label)),
        (true, Ok(out)) => Err(format!("FAIL {}: accepted: {out}", run.label)),
        // The refusal must be the gateway's answer, not some unrelated crash.
        (true, Err(e)) => match e
            .lines()
            .find(|l| REFUSAL_SIGNS.iter().any(|s| l.contains(s)))
        {
            Some(line) => Ok(format!("PASS {} refused: {}", run.label, line.trim())),
            None => Err(format!("FAIL {}: failed, not refused: {e}", run.label)),
        },
    }
}

/// Runs the groups (the processes of a group start together and run concurrently; `parallel`
/// groups at a time) and fails the test listing every run that misbehaved.
async fn run_all(groups: Vec<Vec<Run>>, parallel: usize) {
    let results: Vec<Result<String, String>> = futures::stream::iter(groups)
        .map(|group| futures::future::join_all(group.into_iter().map(execute)))
        .buffer_unordered(parallel)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    let failures: Vec<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(String::as_str))
        .collect();
    for pass in results.iter().flatten() {
        eprintln!("{pass}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} client runs failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_kind_reaches_two_tenants_at_once_and_only_its_own() {
    let Some(peers) = peers("every_client_kind_reaches_two_tenants_at_once_and_only_its_own")
    else {
        return;
    };
    let (gw, org) = start("").await;
    let jwt = gus_jwt(&gw);
    let (acme, globex) = (acme_checks(), globex_checks());
    let t = |tenant: &str, path: &str| format!("{}/t/{tenant}{path}", gw.base);
    let mut groups = Vec::new();
    for kind in client_kinds(&peers) {
        // Both tenants at the same time, each with its own kind of credential.
        groups.push(vec![
            run(
                &kind,
                "acme api key",
                t("acme", kind.path),
                Some(&org.ada),
                &acme,
            ),
            run(
                &kind,
                "globex jwt",
                t("globex", kind.path),
                Some(&jwt),
                &globex,
            ),
        ]);
        // An acme key on globex's endpoint.
        groups.push(vec![refused(run(
            &kind,
            "acme key on globex",
            t("globex", kind.path),
            Some(&org.ada),
            &globex,
        ))]);
    }
    // `?token=` is not accepted unless the operator enables it.
    let python_sse = client_kinds(&peers)
        .into_iter()
        .find(|k| k.label == "python legacy sse")
        .unwrap();
    groups.push(vec![refused(run(
        &python_sse,
        "?token= without opt-in",
        format!("{}?token={}", t("acme", "/sse"), org.ada),
        None,
        &acme,
    ))]);
    run_all(groups, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_clients_authenticate_by_query_token_when_enabled() {
    let Some(peers) = peers("sse_clients_authenticate_by_query_token_when_enabled") else {
        return;
    };
    let (gw, org) = start("sse_query_token = true").await;
    let url = |tenant: &str| format!("{}/t/{tenant}/sse?token={}", gw.base, org.ada);
    let mut groups = Vec::new();
    for kind in client_kinds(&peers).iter().filter(|k| k.path == "/sse") {
        groups.push(vec![
            run(kind, "acme ?token=", url("acme"), None, &acme_checks()),
            refused(run(
                kind,
                "acme ?token= on globex",
                url("globex"),
                None,
                &globex_checks(),
            )),
        ]);
    }
    run_all(groups, 2).await;
}
