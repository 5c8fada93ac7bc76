//! Third-party peers installed by `scripts/install-peers.sh` (found through its exported
//! environment variables). Tests that need them print why they skip when they are absent.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Paths of the installed peers.
pub struct Peers {
    pub python: String,
    pub venv: PathBuf,
    pub node_modules: PathBuf,
    pub everything: String,
    pub node22: String,
    pub conformance: String,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The installed peers, or `None` after printing why the calling test skips.
pub fn peers(test: &str) -> Option<Peers> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("SWITCHBOARD_PYTHON"),
        get("SWITCHBOARD_VENV"),
        get("SWITCHBOARD_NODE_MODULES"),
        get("SWITCHBOARD_EVERYTHING"),
        get("SWITCHBOARD_NODE22"),
        get("SWITCHBOARD_CONFORMANCE"),
    ) {
        (Some(python), Some(venv), Some(nm), Some(everything), Some(node22), Some(conformance)) => {
            Some(Peers {
                python,
                venv: PathBuf::from(venv),
                node_modules: PathBuf::from(nm),
                everything,
                node22,
                conformance,
            })
        }
        _ => {
            // Written to the real stderr (not eprintln!, which the test harness captures) so
            // the reason shows in a plain `cargo test` run.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: third-party MCP peers are not installed; run `eval \"$(scripts/install-peers.sh)\"` first (.ci/run does)"
            );
            None
        }
    }
}

/// One way of connecting a real client: which program, which arguments (without `--url`),
/// and which endpoint path.
pub struct ClientKind {
    pub label: &'static str,
    pub program: String,
    pub args: Vec<String>,
    pub path: &'static str,
}

/// Every client × era × transport combination the interop suite drives.
pub fn client_kinds(peers: &Peers) -> Vec<ClientKind> {
    let root = repo_root();
    let py = root
        .join("tests/interop/py_client.py")
        .display()
        .to_string();
    let ts = root
        .join("tests/interop/ts_client.mjs")
        .display()
        .to_string();
    let modules = peers.node_modules.display().to_string();
    let python = |label, mode: &str, sse: bool| {
        let mut args = vec![py.clone(), "--mode".into(), mode.into()];
        if sse {
            args.extend(["--transport".into(), "sse".into()]);
        }
        ClientKind {
            label,
            program: peers.python.clone(),
            args,
            path: if sse { "/sse" } else { "/mcp" },
        }
    };
    let node = |label, sdk: &str, mode: &str, sse: bool| {
        let mut args = vec![
            ts.clone(),
            "--modules".into(),
            modules.clone(),
            "--sdk".into(),
            sdk.into(),
            "--mode".into(),
            mode.into(),
        ];
        if sse {
            args.extend(["--transport".into(), "sse".into()]);
        }
        ClientKind {
            label,
            program: "node".into(),
            args,
            path: if sse { "/sse" } else { "/mcp" },
        }
    };
    vec![
        python("python legacy streamable", "legacy", false),
        python("python auto streamable", "auto", false),
        python("python 2026-07-28 streamable", "2026-07-28", false),
        python("python legacy sse", "legacy", true),
        python("python auto sse", "auto", true),
        node("ts sdk-1.32.2 legacy streamable", "legacy", "legacy", false),
        node("ts sdk-1.32.2 legacy sse", "legacy", "legacy", true),
        node("ts client-2.4.0 legacy streamable", "v2", "legacy", false),
        node("ts client-2.4.0 auto streamable", "v2", "auto", false),
        node(
            "ts client-2.4.0 2026-07-28 streamable",
            "v2",
            "2026-07-28",
            false,
        ),
    ]
}

/// A child process killed (with its process group) when dropped.
pub struct PeerProcess {
    child: Child,
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // SAFETY: signalling the process group of a child we started as group leader.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `program args` in its own process group with `env`, and waits until it accepts TCP
/// connections on `port`.
pub async fn spawn_listening(
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    port: u16,
) -> PeerProcess {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let process = PeerProcess { child };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{program} did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process
}

/// server-everything in `mode` (`sse` or `streamableHttp`) on a loopback port.
pub async fn everything_http(peers: &Peers, mode: &str) -> (PeerProcess, u16) {
    let port = free_port();
    let preload = repo_root().join("tests/peers/loopback.cjs");
    let process = spawn_listening(
        "node",
        &[&peers.everything, mode],
        &[
            ("PORT", port.to_string()),
            ("NODE_OPTIONS", format!("--require {}", preload.display())),
        ],
        port,
    )
    .await;
    (process, port)
}

/// The dual-era Python fixture upstream over Streamable HTTP.
pub async fn fixture_http(peers: &Peers) -> (PeerProcess, u16) {
    let port = free_port();
    let script = repo_root().join("tests/peers/fixture_server.py");
    let process = spawn_listening(
        &peers.python,
        &[script.to_str().unwrap(), "--port", &port.to_string()],
        &[],
        port,
    )
    .await;
    (process, port)
}

/// Runs a client command; returns its stdout, or panics with its output on failure.
pub async fn run_client(
    program: &str,
    args: &[String],
    env: &[(&str, String)],
) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .map_err(|_| format!("{program} timed out"))?
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{program} {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
