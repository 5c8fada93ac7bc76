//! The HTTP client an upstream's connections use, with the SSRF guard of
//! [`Network::PublicOnly`] definitions (a tenant's own servers): names are resolved by a
//! resolver that drops every non-public address, redirects are not followed (one could lead
//! to an address literal, which is never resolved), no proxy is used (the check would apply
//! to the proxy, not the target), and an address literal in the URL is checked before
//! connecting — the URL may have taken its host from a secret.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use switchboard_domain::network::{check_public_url, is_public};
use switchboard_domain::{Network, UpstreamDef};

/// Resolves with the system resolver and keeps public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address ({}); a tenant's server must be reachable on the internet",
                    all.iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// For a [`Network::PublicOnly`] definition, resolves its host the way its connections
/// will, so a refusal is reported in words (the HTTP client's error would only say that
/// sending failed).
pub(crate) async fn check_host(def: &UpstreamDef) -> Result<(), String> {
    if def.network != Network::PublicOnly {
        return Ok(());
    }
    let Some(host) = def
        .url()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
    else {
        return Ok(());
    };
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Ok(()); // an address literal: checked by `http_client`
    }
    let name: Name = host
        .parse()
        .map_err(|_| format!("{host:?} is not a valid host name"))?;
    PublicOnly
        .resolve(name)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The HTTP client for `def`'s connections; an error says why none may be made.
pub(crate) fn http_client(def: &UpstreamDef) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder().connect_timeout(def.timeouts.connect);
    let builder = match def.network {
        Network::Any => builder,
        Network::PublicOnly => {
            if let Some(url) = def.url() {
                check_public_url(url)?;
            }
            builder
                .dns_resolver(Arc::new(PublicOnly))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
        }
    };
    builder
        .build()
        .map_err(|e| format!("cannot create an HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_names_resolve_to_nothing_usable() {
        let err = PublicOnly
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is not public");
        assert!(err.to_string().contains("no public address"), "{err}");
    }

    #[test]
    fn an_address_literal_from_a_secret_is_checked_before_connecting() {
        let raw = switchboard_domain::RawUpstream {
            transport: Some("streamable-http".into()),
            url: Some("http://{{secret.host}}/mcp".into()),
            ..Default::default()
        };
        let tenant = switchboard_domain::tenancy::TenantId::new("acme").unwrap();
        let def = UpstreamDef::for_tenant(&tenant, "crm", raw, Default::default()).unwrap();
        let rendered = def.render(&tenant, |_| Some("10.0.0.7"));
        let err = http_client(&rendered).unwrap_err();
        assert!(err.contains("not a public address"), "{err}");
    }
}
