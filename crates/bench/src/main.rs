//! `switchboard-bench`: Switchboard against a direct connection, on real MCP.
//!
//! Starts the in-repository demo upstream (Streamable HTTP, both eras) and, when installed,
//! `@modelcontextprotocol/server-everything` (legacy era), each both directly and behind a
//! Switchboard gateway; drives `tools/call` and `tools/list` load at several concurrencies in
//! interleaved rounds (direct, gateway, direct, gateway, …) so machine noise hits both alike;
//! checks every reply; prints a table and writes JSON and a plot of latency against load
//! (SVG). `--short` is a few-second smoke run for CI that only requires zero errors;
//! `--compare FIRST SECOND` checks that every ratio of a second run is within 15 % of the
//! first's.

mod auth;
mod gateways;
mod load;
mod mcp;
mod measure;
mod memory;
mod procs;
mod report;
mod stdio;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use gateways::{Mode, gateway, gateway_with};
use mcp::{Endpoint, Era};
use measure::{CpuOf, Pace, Target, measure, print_cpu_summary, print_row};
use procs::{free_port, start};

#[derive(Parser)]
#[command(about = "MCP benchmark: Switchboard against a direct connection")]
struct Args {
    /// The switchboard binary (build it in release mode for real figures).
    #[arg(long, required_unless_present = "compare")]
    switchboard: Option<PathBuf>,
    /// Compares two runs' JSON reports instead of running: every throughput ratio of the
    /// second within `--tolerance` of the first's (exit status 1 otherwise).
    #[arg(long, num_args = 2, value_names = ["FIRST", "SECOND"])]
    compare: Option<Vec<PathBuf>>,
    /// Largest relative change `--compare` accepts.
    #[arg(long, default_value_t = 0.15)]
    tolerance: f64,
    /// A few seconds per scenario; checks completion and zero errors, not timings.
    #[arg(long)]
    short: bool,
    /// Seconds per target per round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Interleaved rounds per scenario.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Idle legacy sessions opened to measure their memory (default: 1000, 50 with --short).
    #[arg(long)]
    sessions: Option<usize>,
    /// Tenants of the `tenants` scenario (default: 1000, 20 with --short), each with ten
    /// idle sessions for the memory probe (two with --short).
    #[arg(long)]
    tenants: Option<usize>,
    /// `NAME=VALUE` added to the environment of every gateway (not of the upstreams or the
    /// baselines), e.g. `--gateway-env TOKIO_WORKER_THREADS=1`; repeatable.
    #[arg(long, value_parser = parse_env)]
    gateway_env: Vec<(String, String)>,
    /// Folder for the JSON results.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Redis for the shared-limits scenario (`gov:redis`); without it that scenario is
    /// skipped.
    #[arg(long, env = "SWITCHBOARD_BENCH_REDIS_URL")]
    redis_url: Option<String>,
    /// Measure only these targets (comma-separated: demo, everything, auth:key, auth:jwt,
    /// gov:local, gov:redis, list, stdio, tenants); the fixed-rate and memory probes run with `demo`
    /// only.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

/// Whether `--only` selects `label` (everything when it is empty).
fn is_selected(args: &Args, label: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| o == label)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if let Some(files) = &args.compare {
        return report::compare_runs(&files[0], &files[1], args.tolerance);
    }
    let binary = args
        .switchboard
        .clone()
        .context("--switchboard is required")?;
    let _ = gateways::GATEWAY_ENV.set(args.gateway_env.clone());
    let switchboard = binary
        .canonicalize()
        .with_context(|| format!("no switchboard binary at {}", binary.display()))?
        .display()
        .to_string();

    // The in-repository upstream, both eras.
    let demo_port = free_port()?;
    let demo_upstream = start(
        "demo upstream",
        &switchboard,
        &[
            "demo-upstream".into(),
            "--http".into(),
            format!("127.0.0.1:{demo_port}"),
        ],
        &[("SWITCHBOARD_LOG", "warn".into())],
        demo_port,
    )
    .await?;
    let demo_url = format!("http://127.0.0.1:{demo_port}/mcp");
    let demo_gateway = gateway(&switchboard, "demo", &demo_url, Mode::Open).await?;
    let mut targets = vec![Target {
        upstream: "demo",
        direct: vec![Endpoint::open(demo_url.clone())],
        gateway: vec![Endpoint::open(demo_gateway.url.clone())],
        direct_tool: "echo",
        gateway_tool: "demo__echo",
        arguments: json!({"text": "hello"}),
        eras: vec![Era::Legacy, Era::Modern],
        cpu: CpuOf::both(demo_upstream.pid(), demo_gateway.proc.pid()),
    }];

    // server-everything, when the peers are installed (scripts/install-peers.sh).
    let mut _everything = None;
    let mut _everything_gateway = None;
    if let (Ok(everything), Ok(preload)) = (
        std::env::var("SWITCHBOARD_EVERYTHING"),
        std::env::current_dir().map(|d| d.join("tests/peers/loopback.cjs")),
    ) {
        let port = free_port()?;
        let proc = start(
            "server-everything",
            "node",
            &[everything, "streamableHttp".into()],
            &[
                ("PORT", port.to_string()),
                ("NODE_OPTIONS", format!("--require {}", preload.display())),
            ],
            port,
        )
        .await?;
        let url = format!("http://127.0.0.1:{port}/mcp");
        let gw = gateway(&switchboard, "everything", &url, Mode::Open).await?;
        targets.push(Target {
            upstream: "everything",
            direct: vec![Endpoint::open(url)],
            gateway: vec![Endpoint::open(gw.url.clone())],
            direct_tool: "echo",
            gateway_tool: "everything__echo",
            arguments: json!({"message": "hello"}),
            eras: vec![Era::Legacy],
            cpu: CpuOf::both(proc.pid(), gw.proc.pid()),
        });
        _everything = Some(proc);
        _everything_gateway = Some(gw);
    } else {
        eprintln!(
            "note: SWITCHBOARD_EVERYTHING not set; skipping the server-everything scenarios (run scripts/install-peers.sh)"
        );
    }

    // Authentication on (API key, gateway-issued JWT) against the same gateway without
    // tenants: "direct" is the open gateway here, so the ratio is auth-on / auth-off.
    let auth_gateway = gateway(&switchboard, "demo", &demo_url, Mode::Auth { audit: true }).await?;
    let credentials = auth_gateway
        .auth
        .as_ref()
        .context("auth gateway has credentials")?;
    for (label, bearer) in [
        ("auth:key", &credentials.api_key),
        ("auth:jwt", &credentials.token),
    ] {
        targets.push(Target {
            upstream: label,
            direct: vec![Endpoint::open(demo_gateway.url.clone())],
            gateway: vec![Endpoint {
                url: auth_gateway.url.clone(),
                bearer: Some(bearer.clone()),
                stdio: None,
            }],
            direct_tool: "demo__echo",
            gateway_tool: "demo__echo",
            arguments: json!({"text": "hello"}),
            eras: vec![Era::Legacy, Era::Modern],
            cpu: CpuOf::both(demo_gateway.proc.pid(), auth_gateway.proc.pid()),
        });
    }

    // Governance on (the audit log and every kind of rate limit, never refusing) against the
    // same authenticated gateway with both off: the ratio is governance-on / off.
    let bare = gateway(&switchboard, "demo", &demo_url, Mode::Auth { audit: false }).await?;
    let bare_key = bare
        .auth
        .as_ref()
        .context("bare gateway has credentials")?
        .api_key
        .clone();
    let mut governed = vec![(
        "gov:local",
        gateway(
            &switchboard,
            "demo",
            &demo_url,
            Mode::Governed { redis_url: None },
        )
        .await?,
    )];
    match &args.redis_url {
        Some(url) => governed.push((
            "gov:redis",
            gateway(
                &switchboard,
                "demo",
                &demo_url,
                Mode::Governed {
                    redis_url: Some(url.clone()),
                },
            )
            .await?,
        )),
        None => eprintln!(
            "note: --redis-url (SWITCHBOARD_BENCH_REDIS_URL) not set; skipping the gov:redis scenario"
        ),
    }
    for (label, governed_gateway) in &governed {
        let key = &governed_gateway
            .auth
            .as_ref()
            .context("governed gateway has credentials")?
            .api_key;
        targets.push(Target {
            upstream: label,
            direct: vec![Endpoint {
                url: bare.url.clone(),
                bearer: Some(bare_key.clone()),
                stdio: None,
            }],
            gateway: vec![Endpoint {
                url: governed_gateway.url.clone(),
                bearer: Some(key.clone()),
                stdio: None,
            }],
            direct_tool: "demo__echo",
            gateway_tool: "demo__echo",
            arguments: json!({"text": "hello"}),
            eras: vec![Era::Legacy, Era::Modern],
            cpu: CpuOf::both(bare.proc.pid(), governed_gateway.proc.pid()),
        });
    }

    // Many tenants (each with its member and API key) behind one gateway, against the
    // one-tenant authenticated gateway: the memory of ten idle sessions per tenant, measured
    // first on the fresh gateway, then load spread over every tenant.
    let mut _tenants_gateway = None;
    let mut tenants_memory = None;
    if is_selected(&args, "tenants") {
        let count = args.tenants.unwrap_or(if args.short { 20 } else { 1000 });
        let gw = gateway(&switchboard, "demo", &demo_url, Mode::Tenants { count }).await?;
        let memory =
            memory::spread_sessions(&gw, &gw.tenants, if args.short { 2 } else { 10 }).await?;
        memory.print(&format!("gateway with {count} tenants"));
        tenants_memory = Some(json!({"tenants": count, "memory": memory}));
        targets.push(Target {
            upstream: "tenants",
            direct: vec![Endpoint {
                url: auth_gateway.url.clone(),
                bearer: Some(credentials.api_key.clone()),
                stdio: None,
            }],
            gateway: gw.tenants.clone(),
            direct_tool: "demo__echo",
            gateway_tool: "demo__echo",
            arguments: json!({"text": "hello"}),
            eras: vec![Era::Legacy, Era::Modern],
            cpu: CpuOf::both(auth_gateway.proc.pid(), gw.proc.pid()),
        });
        _tenants_gateway = Some(gw);
    }

    // A stdio upstream: the demo upstream as a child of the gateway, against a client with
    // its own stdio connection to another such child.
    let mut _stdio_gateway = None;
    if is_selected(&args, "stdio") {
        let peer = stdio::StdioPeer::spawn(&switchboard, &["demo-upstream"]).await?;
        let upstream = format!(
            "transport = \"stdio\"\ncommand = {switchboard:?}\nargs = [\"demo-upstream\"]\n"
        );
        let gw = gateway_with(&switchboard, "stdio", &upstream, Mode::Open, 1).await?;
        targets.push(Target {
            upstream: "stdio",
            direct: vec![Endpoint::stdio(peer)],
            gateway: vec![Endpoint::open(gw.url.clone())],
            direct_tool: "echo",
            gateway_tool: "stdio__echo",
            arguments: json!({"text": "hello"}),
            eras: vec![Era::Legacy],
            cpu: CpuOf::gateway(gw.proc.pid()),
        });
        _stdio_gateway = Some(gw);
    }

    let costs = auth::in_process_costs(if args.short { 2_000 } else { 100_000 }).await?;
    for c in &costs {
        println!(
            "in-process {:<34} p50 {:>7.2} µs  p99 {:>7.2} µs  ({} iterations)",
            c.step, c.p50_us, c.p99_us, c.iterations
        );
    }

    let pace = Pace {
        seconds: Duration::from_secs_f64(if args.short { 0.5 } else { args.seconds }),
        rounds: if args.short { 1 } else { args.rounds },
    };
    let mut rows = Vec::new();
    let concurrencies: &[usize] = if args.short { &[1, 16] } else { &[1, 16, 64] };
    let selected = |label: &str| is_selected(&args, label);
    for target in targets.iter().filter(|t| selected(t.upstream)) {
        for &era in &target.eras {
            for &c in concurrencies {
                let row = measure(target, era, "tools/call", c, None, pace).await?;
                print_row(&row);
                rows.push(row);
            }
            let row = measure(target, era, "tools/list", 1, None, pace).await?;
            print_row(&row);
            rows.push(row);
        }
    }
    print_cpu_summary(&rows);
    // `tools/list` through 1, 10 and 50 upstreams of 20 tools each (one demo process listing
    // 20 tools behind every entry), against listing directly an upstream that holds as many
    // tools as the gateway's answer (20, 200, and 500: the gateway's first page of 1,000).
    let mut _list_gateways = Vec::new();
    let mut _list_upstreams = Vec::new();
    if selected("list") {
        let mut demo_with = async |tools: usize| -> anyhow::Result<String> {
            let port = free_port()?;
            _list_upstreams.push(
                start(
                    &format!("demo upstream ({tools} tools)"),
                    &switchboard,
                    &[
                        "demo-upstream".into(),
                        "--http".into(),
                        format!("127.0.0.1:{port}"),
                        "--tools".into(),
                        tools.to_string(),
                    ],
                    &[("SWITCHBOARD_LOG", "warn".into())],
                    port,
                )
                .await?,
            );
            Ok(format!("http://127.0.0.1:{port}/mcp"))
        };
        let behind = demo_with(20).await?;
        for (label, copies, listed) in [
            ("list:1", 1, 20),
            ("list:10", 10, 200),
            ("list:50", 50, 500),
        ] {
            let direct = if listed == 20 {
                behind.clone()
            } else {
                demo_with(listed).await?
            };
            let upstream = format!("transport = \"streamable-http\"\nurl = \"{behind}\"\n");
            let gw = gateway_with(&switchboard, "list", &upstream, Mode::Open, copies).await?;
            let target = Target {
                upstream: label,
                direct: vec![Endpoint::open(direct)],
                gateway: vec![Endpoint::open(gw.url.clone())],
                direct_tool: "echo",
                gateway_tool: "echo",
                arguments: json!({}),
                eras: vec![Era::Legacy, Era::Modern],
                cpu: CpuOf::gateway(gw.proc.pid()),
            };
            for &era in &target.eras {
                let row = measure(&target, era, "tools/list", 1, None, pace).await?;
                print_row(&row);
                rows.push(row);
            }
            _list_gateways.push(gw);
        }
    }
    let (sessions, memory) = if selected("demo") {
        // Added latency at a fixed rate through the in-repository upstream.
        let rate = if args.short { 200.0 } else { 1000.0 };
        let row = measure(&targets[0], Era::Modern, "tools/call", 16, Some(rate), pace).await?;
        print_row(&row);
        rows.push(row);

        let sessions = memory::idle_sessions(
            &switchboard,
            &demo_url,
            args.sessions.unwrap_or(if args.short { 50 } else { 1000 }),
        )
        .await?;
        sessions.print("fresh gateway");

        let memory = demo_gateway
            .proc
            .memory_kib()
            .map(|(rss, pss)| json!({"rss_kib": rss, "pss_kib": pss}));
        if let Some(m) = &memory {
            println!("gateway memory after the run: {m}");
        }
        (Some(sessions), memory)
    } else {
        (None, None)
    };
    std::fs::create_dir_all(&args.out)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let file = args.out.join(format!("bench-{stamp}.json"));
    let report = json!({
        "short": args.short,
        "seconds_per_round": args.seconds,
        "rounds": args.rounds,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "gateway_memory": memory,
        "gateway_env": args.gateway_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "in_process_auth": costs,
        "idle_sessions": sessions,
        "tenants": tenants_memory,
        "rows": rows,
    });
    std::fs::write(&file, serde_json::to_string_pretty(&report)?)?;
    let plot = file.with_extension("svg");
    std::fs::write(&plot, report::plot_svg(&report))?;
    println!(
        "results written to {} and {}",
        file.display(),
        plot.display()
    );
    println!("bench: {} passed, 0 failed", rows.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn gateway_env_is_name_equals_value() {
        assert_eq!(
            parse_env("TOKIO_WORKER_THREADS=1").unwrap(),
            ("TOKIO_WORKER_THREADS".into(), "1".into())
        );
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=1").is_err());
        assert!(parse_env("NOVALUE").is_err());
    }
}
