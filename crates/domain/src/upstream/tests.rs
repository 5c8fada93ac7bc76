//! Tests of upstream definitions: validation, placeholders, limits.
use super::*;

fn raw(transport: &str) -> RawUpstream {
    RawUpstream {
        transport: Some(transport.into()),
        ..Default::default()
    }
}

#[test]
fn stdio_needs_a_command() {
    let e = UpstreamDef::from_raw("time", raw("stdio")).unwrap_err();
    assert_eq!(e.field, "command");
    assert!(e.to_string().starts_with("upstreams.time.command:"));
}

#[test]
fn http_needs_an_http_url() {
    let mut r = raw("streamable-http");
    r.url = Some("ftp://x".into());
    assert_eq!(UpstreamDef::from_raw("a", r).unwrap_err().field, "url");
}

#[test]
fn fields_of_another_transport_are_refused() {
    let mut r = raw("stdio");
    r.command = Some("x".into());
    r.url = Some("http://x".into());
    let e = UpstreamDef::from_raw("a", r).unwrap_err();
    assert_eq!(e.field, "url");
    assert!(e.message.contains("not used"));
}

#[test]
fn unknown_transport_names_the_choices() {
    let e = UpstreamDef::from_raw("a", raw("websocket")).unwrap_err();
    assert!(e.message.contains("\"stdio\""));
}

#[test]
fn defaults_apply() {
    let mut r = raw("sse");
    r.url = Some("http://127.0.0.1:1/sse".into());
    let def = UpstreamDef::from_raw("legacy", r).unwrap();
    assert_eq!(def.prefix, "legacy");
    assert_eq!(def.timeouts, Timeouts::default());
    assert_eq!(def.isolation, Isolation::Shared);
}

#[test]
fn header_injection_is_refused() {
    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.headers.insert("X-A".into(), "a\r\nX-B: b".into());
    assert_eq!(UpstreamDef::from_raw("a", r).unwrap_err().field, "headers");
}

#[test]
fn debug_output_never_shows_header_or_env_values() {
    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.headers
        .insert("Authorization".into(), "Bearer sk-secret".into());
    let printed = format!("{:?}", UpstreamDef::from_raw("a", r).unwrap());
    assert!(printed.contains("Authorization"));
    assert!(!printed.contains("sk-secret"), "{printed}");
    let mut r = raw("stdio");
    r.command = Some("x".into());
    r.env.insert("API_KEY".into(), "hunter2".into());
    let printed = format!("{:?}", UpstreamDef::from_raw("b", r).unwrap());
    assert!(
        printed.contains("API_KEY") && !printed.contains("hunter2"),
        "{printed}"
    );
}

#[test]
fn placeholders_make_a_definition_per_tenant() {
    let mut r = raw("streamable-http");
    r.url = Some("https://{{tenant}}.api.example/mcp?k={{secret.api_key}}".into());
    r.headers
        .insert("Authorization".into(), "Bearer {{secret.gh_token}}".into());
    let def = UpstreamDef::from_raw("gh", r).unwrap();
    assert!(def.per_tenant);
    assert_eq!(def.secrets, vec!["api_key", "gh_token"]);
    let tenant = TenantId::new("acme").unwrap();
    let rendered = def.render(&tenant, |name| match name {
        "gh_token" => Some("ghp_1"),
        "api_key" => Some("a b"),
        _ => None,
    });
    assert!(!rendered.per_tenant && rendered.secrets.is_empty());
    let UpstreamTransport::StreamableHttp { url, headers } = &rendered.transport else {
        panic!("transport changed");
    };
    assert_eq!(url, "https://acme.api.example/mcp?k=a%20b");
    assert_eq!(headers["Authorization"], "Bearer ghp_1");

    let mut r = raw("stdio");
    r.command = Some("x".into());
    r.env.insert("TOKEN".into(), "{{secret.token}}".into());
    r.env.insert("PLAIN".into(), "p".into());
    let def = UpstreamDef::from_raw("s", r).unwrap();
    assert!(def.per_tenant);
    let rendered = def.render(&tenant, |_| Some("t"));
    let UpstreamTransport::Stdio { env, .. } = &rendered.transport else {
        panic!("transport changed");
    };
    assert_eq!((env["TOKEN"].as_str(), env["PLAIN"].as_str()), ("t", "p"));
}

#[test]
fn a_definition_without_placeholders_is_shared() {
    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.headers.insert("Authorization".into(), "Bearer x".into());
    let def = UpstreamDef::from_raw("a", r).unwrap();
    assert!(!def.per_tenant && def.secrets.is_empty());
}

#[test]
fn misplaced_or_broken_placeholders_are_refused() {
    let mut r = raw("stdio");
    r.command = Some("x".into());
    r.args = vec!["--token={{secret.t}}".into()];
    let e = UpstreamDef::from_raw("a", r).unwrap_err();
    assert_eq!(e.field, "args");
    assert!(e.message.contains("env"), "{e}");

    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.headers
        .insert("Authorization".into(), "Bearer {{secrets.t}}".into());
    let e = UpstreamDef::from_raw("a", r).unwrap_err();
    assert_eq!(e.field, "headers");
    assert!(e.message.contains("unknown placeholder"), "{e}");

    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.headers.insert("X-Key".into(), "{{secret.k}}".into());
    r.isolation = Some(Isolation::PerSession);
    assert_eq!(
        UpstreamDef::from_raw("a", r).unwrap_err().field,
        "isolation"
    );
}

#[test]
fn process_limits_belong_to_stdio() {
    let mut r = raw("stdio");
    r.command = Some("x".into());
    r.max_open_files = Some(64);
    r.max_memory_mb = Some(512);
    r.max_lifetime_ms = Some(60_000);
    let def = UpstreamDef::from_raw("a", r).unwrap();
    assert_eq!(def.process.open_files, Some(64));
    assert_eq!(def.process.memory_mb, Some(512));
    assert_eq!(def.timeouts.lifetime, Some(Duration::from_secs(60)));
    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.max_processes = Some(4);
    let e = UpstreamDef::from_raw("a", r).unwrap_err();
    assert_eq!(e.field, "max_processes");
    let mut r = raw("stdio");
    r.command = Some("x".into());
    r.max_open_files = Some(0);
    assert_eq!(
        UpstreamDef::from_raw("a", r).unwrap_err().field,
        "max_open_files"
    );
}

#[test]
fn zero_timeouts_are_refused() {
    let mut r = raw("sse");
    r.url = Some("http://127.0.0.1/sse".into());
    r.request_timeout_ms = Some(0);
    assert_eq!(
        UpstreamDef::from_raw("a", r).unwrap_err().field,
        "request_timeout_ms"
    );
}

#[test]
fn a_tenant_can_be_routed_to_its_own_endpoint() {
    let mut r = raw("streamable-http");
    r.url = Some("http://shared.example/mcp".into());
    r.tenant_urls.insert(
        "acme".into(),
        "https://acme.example/mcp?t={{tenant}}".into(),
    );
    let def = UpstreamDef::from_raw("crm", r).unwrap();
    let acme = TenantId::new("acme").unwrap();
    let globex = TenantId::new("globex").unwrap();
    assert!(!def.per_tenant && def.has_own_connections());
    assert!(def.own_connection_for(&acme) && !def.own_connection_for(&globex));
    let UpstreamTransport::StreamableHttp { url, .. } = def.render(&acme, |_| None).transport
    else {
        panic!("transport changed");
    };
    assert_eq!(url, "https://acme.example/mcp?t=acme");

    let mut r = raw("streamable-http");
    r.url = Some("http://shared.example/mcp".into());
    r.tenants = vec!["globex".into()];
    r.tenant_urls.insert("acme".into(), "http://a/mcp".into());
    let e = UpstreamDef::from_raw("crm", r).unwrap_err();
    assert_eq!(e.field, "tenant_urls");
    assert!(e.message.contains("not in tenants"), "{e}");

    let mut r = raw("streamable-http");
    r.url = Some("http://shared.example/mcp".into());
    r.tenant_urls
        .insert("acme".into(), "http://a/mcp?k={{secret.k}}".into());
    assert_eq!(
        UpstreamDef::from_raw("crm", r).unwrap_err().field,
        "tenant_urls"
    );

    let mut r = raw("streamable-http");
    r.url = Some("http://shared.example/mcp".into());
    r.tenant_urls.insert("acme".into(), "http://a/mcp".into());
    r.isolation = Some(Isolation::PerSession);
    assert_eq!(
        UpstreamDef::from_raw("crm", r).unwrap_err().field,
        "tenant_urls"
    );
}

#[test]
fn identity_keys_are_long_literal_and_http_only() {
    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.identity_key = Some("k".repeat(32));
    let def = UpstreamDef::from_raw("a", r).unwrap();
    assert!(def.identity_key.is_some());
    assert!(!format!("{def:?}").contains("kkkk"), "Debug hides the key");
    let mut r = raw("streamable-http");
    r.url = Some("http://127.0.0.1/mcp".into());
    r.identity_key = Some("short".into());
    assert_eq!(
        UpstreamDef::from_raw("a", r).unwrap_err().field,
        "identity_key"
    );
    let mut r = raw("stdio");
    r.command = Some("x".into());
    r.identity_key = Some("k".repeat(32));
    assert_eq!(
        UpstreamDef::from_raw("a", r).unwrap_err().field,
        "identity_key"
    );
}
