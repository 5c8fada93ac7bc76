//! Opening one connection to an upstream: building the transport for its kind and running
//! the MCP handshake (`server/discover` first, falling back to `initialize`).

use std::process::Stdio;
use std::sync::Arc;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::ProtocolVersion;
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use switchboard_domain::{UpstreamDef, UpstreamTransport};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use rmcp::handler::client::ClientHandler;

use super::sse_client;

/// Environment variables a stdio child inherits from the gateway; everything else is scrubbed
/// so the gateway's own secrets never reach an upstream process.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "SYSTEMROOT",
];

/// How many concurrent POSTs one Streamable HTTP upstream connection may carry.
const MAX_CONCURRENT_UPSTREAM_REQUESTS: usize = 256;

/// A running connection and what must be cleaned up when it ends.
pub struct Connection<H: ClientHandler> {
    pub running: RunningService<RoleClient, H>,
    pub child: Option<ChildGroup>,
    /// Stops the legacy SSE reader/writer tasks.
    pub transport_ct: CancellationToken,
    /// The direct path of a Streamable HTTP connection (used on shared connections only).
    pub direct: Option<Arc<super::direct::Direct>>,
}

/// The process group of a stdio upstream. Dropping it kills the whole group, so children
/// that the upstream started (e.g. `npx` → `node`) never outlive it.
pub struct ChildGroup {
    pgid: i32,
    done: bool,
}

impl ChildGroup {
    fn signal(&self, signal: i32) -> bool {
        // SAFETY: killpg only sends a signal; the group id came from a child we spawned as
        // a process-group leader.
        unsafe { libc::killpg(self.pgid, signal) == 0 }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub async fn terminate(mut self, grace: std::time::Duration) {
        if self.signal(libc::SIGTERM) {
            let deadline = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < deadline {
                // Signal 0 probes whether any process of the group is left.
                if !self.signal(0) {
                    self.done = true;
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            self.signal(libc::SIGKILL);
        }
        self.done = true;
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        if !self.done {
            self.signal(libc::SIGKILL);
        }
    }
}

/// Applies a definition's resource limits to the child before it runs its program.
fn limit_resources(cmd: &mut tokio::process::Command, limits: switchboard_domain::ProcessLimits) {
    let wanted: Vec<(libc::__rlimit_resource_t, u64)> = [
        (
            libc::RLIMIT_AS,
            limits.memory_mb.map(|mb| mb.saturating_mul(1 << 20)),
        ),
        (libc::RLIMIT_NOFILE, limits.open_files),
        (libc::RLIMIT_NPROC, limits.processes),
    ]
    .into_iter()
    .filter_map(|(resource, value)| value.map(|v| (resource, v)))
    .collect();
    if wanted.is_empty() {
        return;
    }
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
    // which is async-signal-safe; it allocates nothing (the list was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            for (resource, value) in &wanted {
                let limit = libc::rlimit {
                    rlim_cur: *value as libc::rlim_t,
                    rlim_max: *value as libc::rlim_t,
                };
                if libc::setrlimit(*resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Closes a connection: ends the MCP service, stops SSE tasks, terminates a stdio child.
pub async fn close<H: ClientHandler>(mut conn: Connection<H>, grace: std::time::Duration) {
    conn.transport_ct.cancel();
    // The child first: once it is gone its pipes close and the MCP service ends at once,
    // instead of rmcp waiting for a process that still holds them.
    if let Some(child) = conn.child.take() {
        child.terminate(grace).await;
    }
    let _ = conn.running.close_with_timeout(grace).await;
}

/// Which protocol era a connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The newest the upstream speaks (2026-07-28 stateless when offered, else legacy).
    Newest,
    /// The legacy session protocol, for connections that carry one client's session.
    Session,
}

impl Lifecycle {
    fn mode(self) -> ClientLifecycleMode {
        match self {
            Lifecycle::Newest => ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: None,
            },
            Lifecycle::Session => ClientLifecycleMode::Initialize,
        }
    }
}

/// Opens a connection to `def`, handled by `handler`.
pub async fn open<H: ClientHandler + Clone>(
    def: &UpstreamDef,
    handler: H,
    http: &reqwest::Client,
    lifecycle: Lifecycle,
) -> Result<Connection<H>, String> {
    match open_with(def, handler.clone(), http, lifecycle.mode()).await {
        Ok(conn) => Ok(conn),
        // rmcp's auto mode falls back to `initialize` only when `server/discover` fails; a
        // server that answers it but supports only session versions is an error there, so
        // the fallback is done here, on a fresh transport.
        Err(Handshake::NoCommonVersion(reason)) if lifecycle == Lifecycle::Newest => {
            tracing::debug!(server = def.name.as_str(), %reason, "upstream speaks only session versions; initializing");
            open_with(def, handler, http, ClientLifecycleMode::Initialize)
                .await
                .map_err(Handshake::into_message)
        }
        Err(other) => Err(other.into_message()),
    }
}

/// Why opening a connection failed.
enum Handshake {
    /// The upstream answered `server/discover` with no version we asked for.
    NoCommonVersion(String),
    Failed(String),
}

impl Handshake {
    fn into_message(self) -> String {
        match self {
            Handshake::NoCommonVersion(m) | Handshake::Failed(m) => m,
        }
    }
}

impl From<String> for Handshake {
    fn from(message: String) -> Self {
        Handshake::Failed(message)
    }
}

fn handshake_error(e: ClientInitializeError) -> Handshake {
    let message = format!("handshake failed: {e}");
    match e {
        ClientInitializeError::NoCompatibleProtocolVersion { .. } => {
            Handshake::NoCommonVersion(message)
        }
        _ => Handshake::Failed(message),
    }
}

async fn open_with<H: ClientHandler>(
    def: &UpstreamDef,
    handler: H,
    http: &reqwest::Client,
    mode: ClientLifecycleMode,
) -> Result<Connection<H>, Handshake> {
    let server = def.name.as_str().to_owned();
    match &def.transport {
        UpstreamTransport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).env_clear();
            for key in INHERITED_ENV {
                if let Ok(value) = std::env::var(key) {
                    cmd.env(key, value);
                }
            }
            cmd.envs(env);
            if let Some(cwd) = cwd {
                cmd.current_dir(cwd);
            }
            limit_resources(&mut cmd, def.process);
            let mut wrap = CommandWrap::from(cmd);
            wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
            let (process, stderr) = TokioChildProcess::builder(wrap)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("could not start {command:?}: {e}"))?;
            let child = process.id().map(|pid| ChildGroup {
                pgid: pid as i32,
                done: false,
            });
            if let Some(stderr) = stderr {
                let server = server.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let line: String = line.chars().take(2000).collect();
                        tracing::info!(server = %server, "upstream stderr: {line}");
                    }
                });
            }
            let running = handler
                .serve_with_lifecycle(process, mode)
                .await
                .map_err(handshake_error)?;
            Ok(Connection {
                running,
                child,
                transport_ct: CancellationToken::new(),
                direct: None,
            })
        }
        UpstreamTransport::StreamableHttp { url, headers } => {
            let mut config =
                StreamableHttpClientTransportConfig::with_uri(Arc::<str>::from(url.as_str()))
                    .max_concurrent_requests(MAX_CONCURRENT_UPSTREAM_REQUESTS);
            for (k, v) in headers {
                let name = http::HeaderName::try_from(k.as_str())
                    .map_err(|e| format!("header {k:?}: {e}"))?;
                let value = http::HeaderValue::try_from(v.as_str())
                    .map_err(|e| format!("header {k:?}: {e}"))?;
                config.custom_headers.insert(name, value);
            }
            let recorder = Arc::new(super::direct::Recorder::default());
            let client = super::headers::UpstreamHttp {
                inner: http.clone(),
                identity_key: def.identity_key.as_ref().map(|k| k.0.clone()),
                recorder: Some(recorder.clone()),
            };
            let direct = super::direct::Direct::new(&client, config.uri.clone(), recorder);
            let transport = StreamableHttpClientTransport::with_client(client, config);
            let running = handler
                .serve_with_lifecycle(transport, mode)
                .await
                .map_err(handshake_error)?;
            Ok(Connection {
                running,
                child: None,
                transport_ct: CancellationToken::new(),
                direct: Some(Arc::new(direct)),
            })
        }
        UpstreamTransport::Sse { url, headers } => {
            let ct = CancellationToken::new();
            let key = def.identity_key.as_ref().map(|k| k.0.clone());
            let transport = sse_client::connect(http.clone(), url, headers, key, ct.clone())
                .await
                .map_err(|e| e.to_string())?;
            // The 2024-11-05 transport has no discover: go straight to initialize.
            let running = handler
                .serve_with_lifecycle(transport, ClientLifecycleMode::Initialize)
                .await
                .map_err(|e| {
                    ct.cancel();
                    format!("handshake failed: {e}")
                })?;
            Ok(Connection {
                running,
                child: None,
                transport_ct: ct,
                direct: None,
            })
        }
    }
}
