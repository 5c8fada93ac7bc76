//! Which network addresses an upstream may be reached at: the guard against server-side
//! request forgery through tenant-defined servers.
//!
//! A tenant admin who may add an HTTP server could otherwise point the gateway at its own
//! loopback, the cloud metadata service (169.254.169.254) or the operator's private network.
//! A tenant's definition is therefore [`Network::PublicOnly`] unless the platform allows
//! private networks: its URL may not name such an address or host, and (checked where the
//! connection is made) its host name may not resolve to one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where an upstream's connections may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Anywhere (servers the platform defines).
    #[default]
    Any,
    /// Public addresses only: no loopback, private, link-local, shared (CGNAT), multicast,
    /// documentation or unspecified ranges, by URL or by name resolution, and no redirects.
    PublicOnly,
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped and -compatible forms reach the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking, 240.0.0.0/4 reserved.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation,
        // 64:ff9b::/96 NAT64 (reaches IPv4, possibly private), ::/96 IPv4-compatible.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // fec0::/10 site-local (deprecated), 2002::/16 6to4 (reaches IPv4, possibly private).
        || (first & 0xffc0) == 0xfec0
        || first == 0x2002
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

/// Checks the host of `url` for [`Network::PublicOnly`]: an address literal must be public,
/// and names that always mean this machine (`localhost`, `*.localhost`) are refused. Other
/// names are checked when they are resolved.
pub fn check_public_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    let refuse = |what: String| {
        Err(format!(
            "{what} is not a public address; a tenant's server must be reachable on the internet (the platform may allow private networks: tenant_servers.allow_private_networks)"
        ))
    };
    match parsed.host() {
        None => Err(format!("{url:?} has no host")),
        Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => refuse(ip.to_string()),
        Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => refuse(ip.to_string()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                refuse(name)
            } else {
                Ok(())
            }
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "fec0::1",
            "2002:a00:1::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must not be public");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn urls_naming_this_machine_or_private_addresses_are_refused() {
        for url in [
            "http://127.0.0.1:9000/mcp",
            "http://[::1]/mcp",
            "http://localhost/mcp",
            "http://api.LOCALHOST./mcp",
            "http://169.254.169.254/latest",
            "http://0x7f000001/mcp",
            "http://2130706433/mcp",
            "http://[::ffff:192.168.0.1]/",
        ] {
            let err = check_public_url(url).unwrap_err();
            assert!(err.contains("not a public address"), "{url}: {err}");
        }
        for url in ["https://mcp.example.com/mcp", "http://1.1.1.1/mcp"] {
            check_public_url(url).unwrap();
        }
        assert!(check_public_url("not a url").is_err());
    }
}
