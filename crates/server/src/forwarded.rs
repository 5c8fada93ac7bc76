//! The client's address behind trusted reverse proxies.
//!
//! When the TCP peer is one of `server.trusted_proxies`, the client is the right-most
//! address of `X-Forwarded-For` that is not itself a trusted proxy (every proxy appends the
//! address it received from; anything left of the first untrusted hop may be forged by the
//! client). The layer replaces the request's `ConnectInfo` with that address, so every later
//! consumer — per-address rate limits, IP allowlists, the audit log — sees the client, not
//! the proxy. From an untrusted peer the header is ignored.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The configured proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses and CIDR ranges; `Err` holds the first entry that is neither.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| entry.to_owned())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether no proxy is trusted (the layer is then not installed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` carrying `forwarded_for` headers.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A malformed hop ends the trusted chain: take the last good address.
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The layer: rewrites `ConnectInfo` to the client behind trusted proxies.
pub async fn client_address(
    State(proxies): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let values: Vec<&str> = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            let client = proxies.client(peer.ip(), &values);
            if client != peer.ip() {
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_may_name_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.1".into()]).unwrap();
        // Through one trusted proxy.
        assert_eq!(
            proxies.client(ip("10.1.1.1"), &["203.0.113.9"]),
            ip("203.0.113.9")
        );
        // Through two (the right-most untrusted hop is the client; the client's own forged
        // entry on the left is not believed).
        assert_eq!(
            proxies.client(ip("10.1.1.1"), &["6.6.6.6, 203.0.113.9, 192.0.2.1"]),
            ip("203.0.113.9")
        );
        // Several headers read as one list.
        assert_eq!(
            proxies.client(ip("10.1.1.1"), &["6.6.6.6", "203.0.113.9"]),
            ip("203.0.113.9")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.7"), &["203.0.113.9"]),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            proxies.client(ip("10.1.1.1"), &["junk, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        assert_eq!(proxies.client(ip("10.1.1.1"), &["junk"]), ip("10.1.1.1"));
        // IPv4 on a dual-stack socket.
        assert_eq!(
            proxies.client(ip("::ffff:10.1.1.1"), &["203.0.113.9"]),
            ip("203.0.113.9")
        );
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
