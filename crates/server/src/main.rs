//! `switchboard`: the multi-tenant MCP gateway.
//!
//! With no arguments it starts the zero-setup demo (a built-in demo upstream on
//! 127.0.0.1:8931). See `switchboard --help`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rmcp::ServiceExt;
use switchboard_server::admin_cli;
use switchboard_server::config::{Config, DEFAULT_PORT};
use switchboard_server::demo::DemoServer;

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Multi-tenant MCP gateway")]
struct Cli {
    /// Log filter (e.g. `info`, `switchboard_mcp=debug`).
    #[arg(
        long,
        env = "SWITCHBOARD_LOG",
        default_value = "info,rmcp=warn",
        global = true
    )]
    log: String,
    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text", global = true, value_parser = ["text", "json"])]
    log_format: String,
    /// Database URL (`sqlite://PATH`, `postgres://…`); overrides `database.url`.
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    /// Redis URL (`redis://host:port`) to share rate limits across replicas; overrides
    /// `limits.redis_url`.
    #[arg(
        long,
        env = "SWITCHBOARD_REDIS_URL",
        hide_env_values = true,
        global = true
    )]
    redis_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every tenant's hash chain (or one tenant's); exits 1 if any is broken (an
    /// edited, deleted or reordered record).
    Verify {
        /// Only this tenant's chain (`_platform` for events without a tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a tenant's records as JSON lines, oldest first (for SIEMs).
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-wrap every tenant's data key under the primary master key. Configure the new key
    /// as `secrets.master_key_file` and the old one in `secrets.previous_master_key_files`
    /// (on every replica) first; drop the old one afterwards.
    RotateKey {
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token for a user of a tenant (printed on stdout).
    Issue {
        #[arg(long)]
        tenant: String,
        /// The user's email.
        #[arg(long)]
        user: String,
        /// Lifetime: seconds or 15m, 12h, 30d.
        #[arg(long, default_value = "30d")]
        ttl: String,
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Verify a token of this gateway and print its claims and status.
    Inspect {
        token: String,
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revoke a token of this gateway.
    Revoke {
        token: String,
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Serve {
        /// The TOML configuration file.
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file and print what it declares.
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: PathBuf,
    },
    /// Run the zero-setup demo (the default with no command).
    Demo {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
    },
    /// Bridge stdio to a remote Switchboard (for clients that only start local processes).
    Connect {
        /// The remote MCP endpoint, e.g. https://gateway.example.com/mcp
        url: String,
        /// Bearer token for the remote gateway.
        #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Extra header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// Issue, inspect and revoke tokens signed by this gateway.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Manage tenants, members, groups, roles, grants, API keys and clients through the
    /// admin API (`--url`, `SWITCHBOARD_ADMIN_TOKEN`).
    Admin {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        action: admin_cli::AdminCommand,
    },
    /// Manage the secrets vault's master key.
    Secrets {
        #[command(subcommand)]
        action: SecretsCommand,
    },
    /// Verify and export the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Serve the built-in demo upstream (stdio by default).
    DemoUpstream {
        /// Serve Streamable HTTP at http://ADDR/mcp instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
        /// Speak only the session protocols (up to 2025-11-25), not 2026-07-28.
        #[arg(long)]
        legacy: bool,
        /// Add an `env` tool showing these environment variables (to check what a gateway
        /// passes to a stdio upstream).
        #[arg(long, value_name = "NAME,…", value_delimiter = ',')]
        env_tool: Vec<String>,
        /// List at least this many tools (`filler_01`… added to the demo's own).
        #[arg(long, default_value_t = 0)]
        tools: usize,
    },
}

fn init_logging(filter: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout belongs to the MCP stdio transport in `connect`/`demo-upstream`.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn demo_config(port: u16) -> anyhow::Result<Config> {
    let exe = std::env::current_exe().context("cannot find the switchboard executable")?;
    let exe = toml::Value::String(exe.display().to_string());
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
instructions = "Switchboard demo: tools from the built-in demo upstream are prefixed demo__."

[upstreams.demo]
transport = "stdio"
command = {exe}
args = ["demo-upstream"]
"#
    );
    Ok(Config::from_toml(&text, env_vars())?)
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let running = switchboard_server::start(config).await?;
    let url = format!("http://{}/mcp", running.addr);
    if demo {
        eprintln!(
            "\nSwitchboard demo is running.\n\
             \n  MCP endpoint (Streamable HTTP): {url}\
             \n  Legacy SSE endpoint:            http://{addr}/sse\
             \n  Health:                         http://{addr}/readyz\
             \n  Admin API:                      http://{addr}/admin/v1/docs (`switchboard admin --help`)\
             \n\nTry it:\
             \n  npx @modelcontextprotocol/inspector --cli {url} --method tools/list\
             \n  claude mcp add --transport http switchboard {url}\
             \n\nPress Ctrl-C to stop.\n",
            addr = running.addr
        );
    }
    let stop = running.stop_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    running.wait().await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn demo_upstream(
    http: Option<String>,
    legacy: bool,
    env_tool: Vec<String>,
    tools: usize,
) -> anyhow::Result<()> {
    let demo = if legacy {
        DemoServer::legacy_only()
    } else {
        DemoServer::default()
    }
    .with_env_tool(env_tool)
    .with_tool_count(tools);
    match http {
        None => {
            let running = demo
                .serve(rmcp::transport::stdio())
                .await
                .context("demo upstream: handshake on stdio failed")?;
            let _ = running.waiting().await;
        }
        Some(addr) => {
            use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
            use rmcp::transport::streamable_http_server::{
                StreamableHttpServerConfig, StreamableHttpService,
            };
            let service = StreamableHttpService::new(
                move || Ok(demo.clone()),
                std::sync::Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default().disable_allowed_hosts(),
            );
            let app = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            eprintln!("demo upstream on http://{}/mcp", addr);
            axum::serve(listener, app)
                .with_graceful_shutdown(wait_for_signal())
                .await?;
        }
    }
    Ok(())
}

/// Loads `path` (or the defaults) and applies `--database-url`.
fn load_config(
    path: Option<&std::path::Path>,
    database_url: &Option<String>,
) -> anyhow::Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path, env_vars())?,
        None => Config::from_toml("", env_vars())?,
    };
    if let Some(url) = database_url {
        config.database.url = Some(url.clone().into());
    }
    Ok(config)
}

async fn admin(
    connection: admin_cli::Connection,
    action: admin_cli::AdminCommand,
    database_url: &Option<String>,
) -> anyhow::Result<()> {
    use admin_cli::{AdminCommand, PlatformTokenCmd};
    use switchboard_server::admin as local;
    match action {
        AdminCommand::PlatformToken(cmd) => match cmd {
            PlatformTokenCmd::Create { name, config } => {
                local::create_token(&load_config(config.as_deref(), database_url)?, &name).await
            }
            PlatformTokenCmd::List { config } => {
                local::list_tokens(&load_config(config.as_deref(), database_url)?).await
            }
            PlatformTokenCmd::Revoke { id, config } => {
                local::revoke_token(&load_config(config.as_deref(), database_url)?, &id).await
            }
        },
        action => admin_cli::run(&connection, action).await,
    }
}

async fn token(action: TokenCommand, database_url: &Option<String>) -> anyhow::Result<()> {
    use switchboard_server::token_cli;
    match action {
        TokenCommand::Issue {
            tenant,
            user,
            ttl,
            config,
        } => {
            let config = load_config(config.as_deref(), database_url)?;
            token_cli::issue(&config, &tenant, &user, token_cli::parse_ttl(&ttl)?).await
        }
        TokenCommand::Inspect { token, config } => {
            token_cli::inspect(&load_config(config.as_deref(), database_url)?, &token).await
        }
        TokenCommand::Revoke { token, config } => {
            token_cli::revoke(&load_config(config.as_deref(), database_url)?, &token).await
        }
    }
}

async fn audit(action: AuditCommand, database_url: &Option<String>) -> anyhow::Result<()> {
    use switchboard_server::{audit, tenancy};
    match action {
        AuditCommand::Verify { tenant, config } => {
            let config = load_config(config.as_deref(), database_url)?;
            let store = tenancy::open_store(&config).await?;
            if !audit::verify(&store, tenant.as_deref()).await? {
                anyhow::bail!("the audit log has been tampered with (see above)");
            }
            Ok(())
        }
        AuditCommand::Export { tenant, config } => {
            let config = load_config(config.as_deref(), database_url)?;
            let store = tenancy::open_store(&config).await?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let count = audit::export(&store, &tenant, &mut out).await?;
            std::io::Write::flush(&mut out)?;
            eprintln!("{count} records");
            Ok(())
        }
    }
}

// mimalloc rather than the system allocator: the request path allocates many small,
// short-lived buffers across threads, where glibc's malloc spent 15-20 % of the gateway's CPU
// (profiled under load) and fragmented after session churn; the benchmark measured 20-30 %
// more calls per second at 16 connections.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's settings for a long-running server: freed memory goes back to the OS at once
/// instead of after a second, and arenas are committed as they are used. Measured: idle RSS
/// 27.6 MiB instead of 49 MiB and 76 MiB instead of 117 MiB per 1,000 idle sessions, for about
/// 6 % of the throughput mimalloc's defaults give. mimalloc reads them from the environment
/// when the process starts (set later, they do not take); an operator's own values win.
const ALLOCATOR_ENV: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];

/// Runs the binary again with the allocator settings in its environment when some are
/// missing: `exec` keeps the process id, arguments and open files. Returns only when nothing
/// needed doing or the exec failed (mimalloc's defaults then stay).
fn with_allocator_settings() {
    use std::os::unix::process::CommandExt;
    let missing: Vec<_> = ALLOCATOR_ENV
        .iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    // The same `argv[0]`, so usage lines and process listings read as before.
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args);
    for (name, value) in missing {
        command.env(name, value);
    }
    let err = command.exec();
    eprintln!("note: could not restart with the allocator's settings ({err}); using its defaults");
}

/// Called by each runtime worker as it goes idle: at most five times a second, mimalloc
/// collects that thread's heap. Memory another thread freed into it (a parked session's
/// service loop ends on any worker) is otherwise only reclaimed when the owner allocates
/// again, so an idle gateway kept ~40 KiB per parked session instead of returning it to the
/// system (the session manager wakes idle workers after parking, see `parking.rs`).
fn release_freed_memory() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local!(static LAST: Cell<Option<Instant>> = const { Cell::new(None) });
    LAST.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_some_and(|at| now.duration_since(at) < Duration::from_millis(200))
        {
            return;
        }
        last.set(Some(now));
        // SAFETY: `mi_collect` only walks the calling thread's own heap; any thread may call
        // it at any time.
        unsafe { libmimalloc_sys::mi_collect(false) };
    });
}

fn main() -> anyhow::Result<()> {
    with_allocator_settings();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(release_freed_memory)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    switchboard_mcp::install_crypto_provider();
    let cli = Cli::parse();
    init_logging(&cli.log, &cli.log_format);
    let db = &cli.database_url;
    let redis = &cli.redis_url;
    let with_db = |mut config: Config| {
        if let Some(url) = db {
            config.database.url = Some(url.clone().into());
        }
        if let Some(url) = redis {
            config.limits.redis_url = Some(url.clone().into());
        }
        config
    };
    match cli.command {
        None => serve(with_db(demo_config(DEFAULT_PORT)?), true).await,
        Some(Command::Demo { port }) => serve(with_db(demo_config(port)?), true).await,
        Some(Command::Serve { config }) => {
            serve(with_db(load_config(Some(&config), db)?), false).await
        }
        Some(Command::Token { action }) => token(action, db).await,
        Some(Command::Audit { action }) => audit(action, db).await,
        Some(Command::Admin { connection, action }) => admin(connection, action, db).await,
        Some(Command::Secrets {
            action: SecretsCommand::RotateKey { config },
        }) => switchboard_server::secrets::rotate_key(&load_config(config.as_deref(), db)?).await,
        Some(Command::CheckConfig { config }) => {
            let config = with_db(load_config(Some(&config), db)?);
            println!("configuration OK: listen {}", config.listen);
            let limits = &config.limits;
            let store = match &limits.redis_url {
                Some(_) => format!("shared through Redis (keys {}*)", limits.redis_prefix),
                None => "in-process".to_owned(),
            };
            let address = limits.address.map_or("none".into(), |l| l.to_string());
            println!("  rate limits: {store}; per client address before authentication: {address}");
            for (plan, defaults) in [
                ("free", &limits.plans.free),
                ("pro", &limits.plans.pro),
                ("enterprise", &limits.plans.enterprise),
            ] {
                println!("    plan {plan}: {}", serde_json::to_string(defaults)?);
            }
            for def in &config.upstreams {
                let tenants = if def.tenants.is_empty() {
                    "all tenants".to_owned()
                } else {
                    def.tenants
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "  upstream {:<20} {:<16} prefix {:?}  for {tenants}",
                    def.name.as_str(),
                    def.transport.kind(),
                    def.prefix
                );
            }
            Ok(())
        }
        Some(Command::Connect {
            url,
            token,
            headers,
        }) => switchboard_server::connect::run(url, token, headers).await,
        Some(Command::DemoUpstream {
            http,
            legacy,
            env_tool,
            tools,
        }) => demo_upstream(http, legacy, env_tool, tools).await,
    }
}
