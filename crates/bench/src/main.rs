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
mod memory;
mod procs;
mod report;
mod stdio;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use serde_json::json;

use gateways::{Mode, gateway, gateway_with};
use load::{Call, Sample};
use mcp::{Endpoint, Era};
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
    /// Folder for the JSON results.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Redis for the shared-limits scenario (`gov:redis`); without it that scenario is
    /// skipped.
    #[arg(long, env = "SWITCHBOARD_BENCH_REDIS_URL")]
    redis_url: Option<String>,
    /// Measure only these targets (comma-separated: demo, everything, auth:key, auth:jwt,
    /// gov:local, gov:redis, list, stdio); the fixed-rate and memory probes run with `demo`
    /// only.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(Serialize)]
struct Side {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    ok: u64,
    errors: u64,
}

impl From<&Sample> for Side {
    fn from(s: &Sample) -> Self {
        Side {
            throughput: s.throughput(),
            p50_ms: s.percentile_ms(50.0),
            p99_ms: s.percentile_ms(99.0),
            p999_ms: s.percentile_ms(99.9),
            ok: s.ok,
            errors: s.errors,
        }
    }
}

#[derive(Serialize)]
struct Row {
    upstream: String,
    scenario: String,
    era: Era,
    concurrency: usize,
    rate: Option<f64>,
    direct: Side,
    gateway: Side,
    throughput_ratio: f64,
    added_p50_ms: f64,
    added_p99_ms: f64,
}

struct Target {
    upstream: &'static str,
    /// The baseline (a direct connection, or for the auth scenarios the gateway without
    /// tenants).
    direct: Endpoint,
    gateway: Endpoint,
    direct_tool: &'static str,
    gateway_tool: &'static str,
    arguments: serde_json::Value,
    eras: Vec<Era>,
}

async fn measure(
    target: &Target,
    era: Era,
    scenario: &str,
    concurrency: usize,
    rate: Option<f64>,
    args: &Args,
) -> anyhow::Result<Row> {
    let seconds = Duration::from_secs_f64(if args.short { 0.5 } else { args.seconds });
    let rounds = if args.short { 1 } else { args.rounds };
    let (direct_call, gateway_call) = if scenario == "tools/list" {
        (Call::List, Call::List)
    } else {
        (
            Call::Tool {
                tool: target.direct_tool.into(),
                arguments: target.arguments.clone(),
            },
            Call::Tool {
                tool: target.gateway_tool.into(),
                arguments: target.arguments.clone(),
            },
        )
    };
    let mut direct = Sample::default();
    let mut through = Sample::default();
    for _ in 0..rounds {
        direct.merge(
            load::run(
                &target.direct,
                era,
                &direct_call,
                concurrency,
                seconds,
                rate,
            )
            .await?,
        );
        through.merge(
            load::run(
                &target.gateway,
                era,
                &gateway_call,
                concurrency,
                seconds,
                rate,
            )
            .await?,
        );
    }
    let (d, g) = (Side::from(&direct), Side::from(&through));
    for (label, sample) in [("direct", &direct), ("gateway", &through)] {
        if sample.errors > 0 {
            bail!(
                "{} {scenario} {} c={concurrency} via {label}: {} errors, first: {}",
                target.upstream,
                era.label(),
                sample.errors,
                sample.first_error.clone().unwrap_or_default()
            );
        }
        if sample.ok == 0 {
            bail!(
                "{} {scenario} via {label}: no successful request",
                target.upstream
            );
        }
    }
    Ok(Row {
        upstream: target.upstream.into(),
        scenario: scenario.into(),
        era,
        concurrency,
        rate,
        throughput_ratio: g.throughput / d.throughput.max(1e-9),
        added_p50_ms: g.p50_ms - d.p50_ms,
        added_p99_ms: g.p99_ms - d.p99_ms,
        direct: d,
        gateway: g,
    })
}

fn print_row(row: &Row) {
    let rate = row.rate.map(|r| format!("@{r:.0}/s")).unwrap_or_default();
    println!(
        "{:<12} {:<11} {:<10} c={:<3}{:<8} direct {:>8.0}/s p50 {:>6.2} p99 {:>6.2} | gateway {:>8.0}/s p50 {:>6.2} p99 {:>6.2} | ratio {:>5.1}% +p50 {:>5.2} ms +p99 {:>5.2} ms",
        row.upstream,
        row.scenario,
        row.era.label(),
        row.concurrency,
        rate,
        row.direct.throughput,
        row.direct.p50_ms,
        row.direct.p99_ms,
        row.gateway.throughput,
        row.gateway.p50_ms,
        row.gateway.p99_ms,
        row.throughput_ratio * 100.0,
        row.added_p50_ms,
        row.added_p99_ms,
    );
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
    let switchboard = binary
        .canonicalize()
        .with_context(|| format!("no switchboard binary at {}", binary.display()))?
        .display()
        .to_string();

    // The in-repository upstream, both eras.
    let demo_port = free_port()?;
    let _demo = start(
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
        direct: Endpoint::open(demo_url.clone()),
        gateway: Endpoint::open(demo_gateway.url.clone()),
        direct_tool: "echo",
        gateway_tool: "demo__echo",
        arguments: json!({"text": "hello"}),
        eras: vec![Era::Legacy, Era::Modern],
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
            direct: Endpoint::open(url),
            gateway: Endpoint::open(gw.url.clone()),
            direct_tool: "echo",
            gateway_tool: "everything__echo",
            arguments: json!({"message": "hello"}),
            eras: vec![Era::Legacy],
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
            direct: Endpoint::open(demo_gateway.url.clone()),
            gateway: Endpoint {
                url: auth_gateway.url.clone(),
                bearer: Some(bearer.clone()),
                stdio: None,
            },
            direct_tool: "demo__echo",
            gateway_tool: "demo__echo",
            arguments: json!({"text": "hello"}),
            eras: vec![Era::Legacy, Era::Modern],
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
            direct: Endpoint {
                url: bare.url.clone(),
                bearer: Some(bare_key.clone()),
                stdio: None,
            },
            gateway: Endpoint {
                url: governed_gateway.url.clone(),
                bearer: Some(key.clone()),
                stdio: None,
            },
            direct_tool: "demo__echo",
            gateway_tool: "demo__echo",
            arguments: json!({"text": "hello"}),
            eras: vec![Era::Legacy, Era::Modern],
        });
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
            direct: Endpoint::stdio(peer),
            gateway: Endpoint::open(gw.url.clone()),
            direct_tool: "echo",
            gateway_tool: "stdio__echo",
            arguments: json!({"text": "hello"}),
            eras: vec![Era::Legacy],
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

    let mut rows = Vec::new();
    let concurrencies: &[usize] = if args.short { &[1, 16] } else { &[1, 16, 64] };
    let selected = |label: &str| is_selected(&args, label);
    for target in targets.iter().filter(|t| selected(t.upstream)) {
        for &era in &target.eras {
            for &c in concurrencies {
                let row = measure(target, era, "tools/call", c, None, &args).await?;
                print_row(&row);
                rows.push(row);
            }
            let row = measure(target, era, "tools/list", 1, None, &args).await?;
            print_row(&row);
            rows.push(row);
        }
    }
    // `tools/list` through 1, 10 and 50 upstreams of 20 tools each (one demo process listing
    // 20 tools behind every entry), against listing one such upstream directly.
    let mut _list_gateways = Vec::new();
    let mut _list_upstream = None;
    if selected("list") {
        let port = free_port()?;
        _list_upstream = Some(
            start(
                "demo upstream (20 tools)",
                &switchboard,
                &[
                    "demo-upstream".into(),
                    "--http".into(),
                    format!("127.0.0.1:{port}"),
                    "--tools".into(),
                    "20".into(),
                ],
                &[("SWITCHBOARD_LOG", "warn".into())],
                port,
            )
            .await?,
        );
        let url = format!("http://127.0.0.1:{port}/mcp");
        for (label, copies) in [("list:1", 1), ("list:10", 10), ("list:50", 50)] {
            let upstream = format!("transport = \"streamable-http\"\nurl = \"{url}\"\n");
            let gw = gateway_with(&switchboard, "list", &upstream, Mode::Open, copies).await?;
            let target = Target {
                upstream: label,
                direct: Endpoint::open(url.clone()),
                gateway: Endpoint::open(gw.url.clone()),
                direct_tool: "echo",
                gateway_tool: "echo",
                arguments: json!({}),
                eras: vec![Era::Legacy, Era::Modern],
            };
            for &era in &target.eras {
                let row = measure(&target, era, "tools/list", 1, None, &args).await?;
                print_row(&row);
                rows.push(row);
            }
            _list_gateways.push(gw);
        }
    }
    let (sessions, memory) = if selected("demo") {
        // Added latency at a fixed rate through the in-repository upstream.
        let rate = if args.short { 200.0 } else { 1000.0 };
        let row = measure(
            &targets[0],
            Era::Modern,
            "tools/call",
            16,
            Some(rate),
            &args,
        )
        .await?;
        print_row(&row);
        rows.push(row);

        let sessions = memory::idle_sessions(
            &switchboard,
            &demo_url,
            args.sessions.unwrap_or(if args.short { 50 } else { 1000 }),
        )
        .await?;
        println!(
            "fresh gateway: idle RSS {} KiB, PSS {} KiB; {} idle legacy sessions: +{:.0} KiB RSS, +{:.0} KiB PSS per 1,000",
            sessions.idle_rss_kib,
            sessions.idle_pss_kib,
            sessions.sessions,
            sessions.rss_per_1000_sessions_kib,
            sessions.pss_per_1000_sessions_kib
        );

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
        "in_process_auth": costs,
        "idle_sessions": sessions,
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
