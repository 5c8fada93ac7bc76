//! Tests of the configuration: defaults, every section's checks, environment overrides.

use super::*;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn empty_file_gives_defaults() {
    let c = Config::from_toml("", no_env()).unwrap();
    assert_eq!(c.listen.port(), DEFAULT_PORT);
    assert!(c.upstreams.is_empty());
}

#[test]
fn unknown_keys_are_named() {
    let e = Config::from_toml("[server]\nlisten_on = 1", no_env()).unwrap_err();
    assert!(e.to_string().contains("listen_on"), "{e}");
}

#[test]
fn upstream_errors_name_the_field() {
    let e = Config::from_toml("[upstreams.time]\ntransport = \"stdio\"", no_env()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "upstreams.time.command: required for transport \"stdio\", e.g. command = \"uvx\""
    );
}

#[test]
fn env_overrides_apply_with_types() {
    let env = vec![
        ("SWITCHBOARD_SERVER__PAGE_SIZE".into(), "7".into()),
        ("SWITCHBOARD_UPSTREAMS__T__TRANSPORT".into(), "stdio".into()),
        ("SWITCHBOARD_UPSTREAMS__T__COMMAND".into(), "true".into()),
        ("SWITCHBOARD_CONFIG".into(), "ignored.toml".into()),
        ("OTHER__X".into(), "1".into()),
    ];
    let c = Config::from_toml("", env).unwrap();
    assert_eq!(c.server.page_size, 7);
    assert_eq!(c.upstreams.len(), 1);
}

#[test]
fn the_admin_token_comes_from_its_own_variable_and_must_be_long() {
    use secrecy::ExposeSecret;
    let token = "0123456789abcdef0123456789abcdef";
    let env = vec![("SWITCHBOARD_ADMIN_TOKEN".into(), token.into())];
    let c = Config::from_toml("", env).unwrap();
    assert_eq!(c.admin.token.unwrap().expose_secret(), token);
    // A number-looking token stays a string; an empty one is unset.
    let env = vec![("SWITCHBOARD_ADMIN_TOKEN".into(), "1".repeat(40))];
    assert_eq!(
        Config::from_toml("", env)
            .unwrap()
            .admin
            .token
            .unwrap()
            .expose_secret()
            .len(),
        40
    );
    let env = vec![("SWITCHBOARD_ADMIN_TOKEN".into(), String::new())];
    assert!(Config::from_toml("", env).unwrap().admin.token.is_none());
    let env = vec![("SWITCHBOARD_ADMIN_TOKEN".into(), "short".into())];
    let e = Config::from_toml("", env).unwrap_err();
    assert!(e.to_string().starts_with("admin.token:"), "{e}");
    assert!(
        Config::from_toml("[admin]\nenabled = false", no_env()).is_ok_and(|c| !c.admin.enabled)
    );
}

#[test]
fn env_override_with_wrong_type_is_reported() {
    let env = vec![("SWITCHBOARD_SERVER__PAGE_SIZE".into(), "many".into())];
    let e = Config::from_toml("", env).unwrap_err();
    assert!(e.to_string().contains("page_size"), "{e}");
}

#[test]
fn bad_listen_address_is_explained() {
    let e = Config::from_toml("[server]\nlisten = \"localhost\"", no_env()).unwrap_err();
    assert!(e.to_string().starts_with("server.listen:"), "{e}");
}

#[test]
fn duplicate_prefixes_are_refused() {
    let toml = r#"
        [upstreams.a]
        transport = "stdio"
        command = "x"
        prefix = "p"
        [upstreams.b]
        transport = "stdio"
        command = "y"
        prefix = "p"
    "#;
    let e = Config::from_toml(toml, no_env()).unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
}

#[test]
fn governance_settings_are_checked_and_named() {
    let c = Config::from_toml("", no_env()).unwrap();
    assert_eq!(
        serde_json::to_string(&c.limits.plans.free).unwrap(),
        r#"{"tenant":"6000/min","user":"600/min"}"#
    );
    assert!(c.audit.enabled && c.metrics.enabled && c.metrics.token.is_none());
    for (toml, named) in [
        ("[metrics]\ntoken = \"\"", "metrics.token"),
        ("[metrics]\nmax_series = 1", "metrics.max_series"),
        (
            "[limits]\nredis_url = \"rediss://h:6379\"",
            "limits.redis_url",
        ),
        ("[limits]\nredis_timeout_ms = 0", "limits.redis_timeout_ms"),
        ("[limits]\naddress = \"10/fortnight\"", "unit"),
        ("[limits.plans.free]\nusers = \"1/s\"", "users"),
        ("[audit]\nbatch_size = 0", "audit.batch_size"),
        ("[audit]\nqueue_capacity = 1", "audit.queue_capacity"),
    ] {
        let e = Config::from_toml(toml, no_env()).unwrap_err().to_string();
        assert!(e.contains(named), "{toml}: {e}");
    }
}

#[test]
fn session_parking_is_on_by_default_and_bounded() {
    let options = Config::from_toml("", no_env()).unwrap().http_options();
    assert_eq!(options.session_park_after, Some(Duration::from_secs(10)));
    let off = Config::from_toml("[server]\nsession_park_after_ms = 0", no_env()).unwrap();
    assert_eq!(off.http_options().session_park_after, None);
    let e = Config::from_toml("[server]\nsession_park_after_ms = 500", no_env()).unwrap_err();
    assert!(
        e.to_string().starts_with("server.session_park_after_ms:")
            && e.to_string().contains("at least 1000"),
        "{e}"
    );
}
