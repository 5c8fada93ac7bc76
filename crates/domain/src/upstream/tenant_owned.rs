//! Servers a tenant defines for itself through the admin API.
//!
//! A tenant admin may add Streamable HTTP and SSE servers only: a stdio definition would run
//! a command of the tenant's choosing on the gateway, so only platform administrators define
//! commands (for the catalog, or as one tenant's server). A tenant's server is available to that tenant alone, always reached on the
//! tenant's own connection (its `{{secret.NAME}}` placeholders are filled with the tenant's
//! or the calling user's secrets), and — unless the platform allows private networks — only
//! at public addresses (see [`crate::network`]).

use super::{Network, RawUpstream, UpstreamDef, UpstreamDefError};
use crate::network::check_public_url;
use crate::tenancy::TenantId;

/// What a tenant's server definition may do beyond the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantServerRules {
    /// Its URL may name private and loopback addresses (a platform setting).
    pub allow_private_networks: bool,
    /// It may be a stdio command (defined by a platform administrator).
    pub allow_commands: bool,
}

impl UpstreamDef {
    /// Checks a definition made for `tenant` under `rules`.
    pub fn for_tenant(
        tenant: &TenantId,
        name: &str,
        raw: RawUpstream,
        rules: TenantServerRules,
    ) -> Result<UpstreamDef, UpstreamDefError> {
        let allow_private = rules.allow_private_networks;
        let err = |field: &'static str, message: &str| UpstreamDefError {
            server: name.to_owned(),
            field,
            message: message.to_owned(),
        };
        let stdio = raw.transport.as_deref() == Some("stdio") || raw.command.is_some();
        if stdio && !rules.allow_commands {
            return Err(err(
                "transport",
                "a tenant may add \"streamable-http\" and \"sse\" servers; stdio servers run commands on the gateway and are defined by platform administrators",
            ));
        }
        if !raw.tenants.is_empty() {
            return Err(err(
                "tenants",
                "a tenant's server is its own; remove the list",
            ));
        }
        if !raw.tenant_urls.is_empty() {
            return Err(err(
                "tenant_urls",
                "routes catalog servers per tenant; put the endpoint in url",
            ));
        }
        if raw.identity_key.is_some() {
            return Err(err(
                "identity_key",
                "signed identity headers are configured by the platform on catalog servers; remove it",
            ));
        }
        if raw.isolation.is_some() {
            return Err(err(
                "isolation",
                "a tenant's server always runs on the tenant's own connections; remove it",
            ));
        }
        let mut def = UpstreamDef::from_raw(name, raw)?;
        if !allow_private && let Some(url) = def.url() {
            // Placeholders filled with a harmless value: what is checked is the host as
            // written; a host taken from a secret is checked again when it is resolved.
            let sample = def.render(tenant, |_| Some("x"));
            check_public_url(sample.url().unwrap_or(url)).map_err(|m| UpstreamDefError {
                server: name.to_owned(),
                field: "url",
                message: m,
            })?;
        }
        def.tenants = vec![tenant.clone()];
        def.per_tenant = true;
        // Only a platform administrator's definition may take members' own secrets.
        def.user_secrets = rules.allow_commands;
        def.network = if allow_private {
            Network::Any
        } else {
            Network::PublicOnly
        };
        Ok(def)
    }

    /// The endpoint of an HTTP server (none for stdio).
    pub fn url(&self) -> Option<&str> {
        match &self.transport {
            super::UpstreamTransport::StreamableHttp { url, .. }
            | super::UpstreamTransport::Sse { url, .. } => Some(url),
            super::UpstreamTransport::Stdio { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawUpstream {
        RawUpstream {
            transport: Some("streamable-http".into()),
            url: Some(url.into()),
            ..Default::default()
        }
    }

    const PUBLIC: TenantServerRules = TenantServerRules {
        allow_private_networks: false,
        allow_commands: false,
    };
    const PRIVATE: TenantServerRules = TenantServerRules {
        allow_private_networks: true,
        allow_commands: false,
    };

    fn acme() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    #[test]
    fn a_tenants_server_is_its_own_and_public_only() {
        let mut r = raw("https://mcp.example.com/mcp");
        r.headers
            .insert("Authorization".into(), "Bearer {{secret.tok}}".into());
        let def = UpstreamDef::for_tenant(&acme(), "crm", r, PUBLIC).unwrap();
        assert_eq!(def.tenants, vec![acme()]);
        assert!(def.per_tenant && def.own_connection_for(&acme()));
        assert!(!def.available_to(&TenantId::new("other").unwrap()));
        assert_eq!(def.network, Network::PublicOnly);
        assert_eq!(def.secrets, vec!["tok".to_string()]);
        assert!(
            !def.user_secrets,
            "a tenant admin's server never sees members' own secrets"
        );
    }

    #[test]
    fn commands_private_addresses_and_platform_fields_are_refused() {
        let stdio = RawUpstream {
            transport: Some("stdio".into()),
            command: Some("sh".into()),
            ..Default::default()
        };
        let e = UpstreamDef::for_tenant(&acme(), "x", stdio.clone(), PRIVATE).unwrap_err();
        assert_eq!(e.field, "transport");
        let platform = TenantServerRules {
            allow_commands: true,
            ..PUBLIC
        };
        let def = UpstreamDef::for_tenant(&acme(), "x", stdio, platform).unwrap();
        assert!(
            def.per_tenant && def.tenants == vec![acme()],
            "a platform-defined command"
        );
        for url in [
            "http://127.0.0.1:9/mcp",
            "http://169.254.169.254/",
            "http://localhost/mcp",
        ] {
            let e = UpstreamDef::for_tenant(&acme(), "x", raw(url), PUBLIC).unwrap_err();
            assert_eq!(e.field, "url", "{url}");
            assert!(e.message.contains("allow_private_networks"), "{e}");
        }
        let def =
            UpstreamDef::for_tenant(&acme(), "x", raw("http://127.0.0.1:9/mcp"), PRIVATE).unwrap();
        assert_eq!(def.network, Network::Any);
        let mut r = raw("https://a.example.com/");
        r.tenants = vec!["other".into()];
        assert_eq!(
            UpstreamDef::for_tenant(&acme(), "x", r, PUBLIC)
                .unwrap_err()
                .field,
            "tenants"
        );
        let mut r = raw("https://a.example.com/");
        r.identity_key = Some("k".repeat(40));
        assert_eq!(
            UpstreamDef::for_tenant(&acme(), "x", r, PUBLIC)
                .unwrap_err()
                .field,
            "identity_key"
        );
    }

    #[test]
    fn a_placeholder_in_the_path_keeps_the_host_checked() {
        let e =
            UpstreamDef::for_tenant(&acme(), "x", raw("http://10.0.0.1/{{tenant}}/mcp"), PUBLIC)
                .unwrap_err();
        assert_eq!(e.field, "url");
        UpstreamDef::for_tenant(
            &acme(),
            "x",
            raw("https://a.example.com/{{tenant}}"),
            PUBLIC,
        )
        .unwrap();
    }
}
