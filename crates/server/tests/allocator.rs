//! The `switchboard` binary starts with its allocator's settings in its environment (it runs
//! itself again with them when they are missing, keeping its process id), and an operator's
//! own values win.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment of a running `switchboard demo-upstream` (stdio: it waits on stdin) once
/// it carries the allocator settings, started with `env` added.
fn environment_of_running_binary(env: &[(&str, &str)]) -> Vec<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .arg("demo-upstream")
        .env_remove("MIMALLOC_PURGE_DELAY")
        .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        // The same process id before and after the exec.
        if let Ok(raw) = std::fs::read(format!("/proc/{}/environ", child.id())) {
            seen = raw
                .split(|b| *b == 0)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            if seen
                .iter()
                .any(|v| v.starts_with("MIMALLOC_ARENA_EAGER_COMMIT="))
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after the exec"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

#[test]
fn the_binary_runs_with_its_allocator_settings() {
    let env = environment_of_running_binary(&[]);
    assert!(env.iter().any(|v| v == "MIMALLOC_PURGE_DELAY=0"), "{env:?}");
    assert!(
        env.iter().any(|v| v == "MIMALLOC_ARENA_EAGER_COMMIT=0"),
        "{env:?}"
    );
}

#[test]
fn an_operators_allocator_settings_win() {
    let env = environment_of_running_binary(&[("MIMALLOC_PURGE_DELAY", "250")]);
    assert!(
        env.iter().any(|v| v == "MIMALLOC_PURGE_DELAY=250"),
        "{env:?}"
    );
    assert!(
        env.iter().any(|v| v == "MIMALLOC_ARENA_EAGER_COMMIT=0"),
        "{env:?}"
    );
}
