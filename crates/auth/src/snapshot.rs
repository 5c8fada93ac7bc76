//! The in-memory snapshot every request authenticates against: tenants, domains, API keys,
//! trusted issuers, memberships, groups and compiled policies, built from one read of the
//! store and swapped whole when the store's revision changes. Nothing on the request path
//! touches the database.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use switchboard_domain::tenancy::{
    ApiKeyRecord, ClientId, Credential, CredentialKind, Directory, GroupName, Identity,
    IssuerConfig, KeyOwner, Policy, Principal, Role, ServiceClient, Tenant, TenantId, UserId,
};

use crate::error::AuthError;
use crate::keys::KeySet;

/// An issuer one tenant trusts, with its static keys parsed.
pub struct TrustedIssuer {
    pub config: IssuerConfig,
    /// Parsed static keys; `Err` holds why they are unusable (tokens are then refused).
    pub static_keys: Option<Result<KeySet, String>>,
}

/// One tenant, ready for requests.
pub struct TenantEntry {
    pub tenant: Tenant,
    pub policy: Arc<Policy>,
    /// The tenant's client address ranges.
    allowlist: Allowlist,
    members: HashMap<UserId, Role>,
    groups_of: HashMap<UserId, Vec<GroupName>>,
    clients: HashMap<ClientId, ServiceClient>,
    revoked: HashSet<String>,
}

impl TenantEntry {
    /// Whether a request from `address` may reach this tenant.
    pub fn admits(&self, address: Option<IpAddr>) -> Result<(), AuthError> {
        self.allowlist
            .check(address)
            .map_err(|refusal| match refusal {
                Refusal::Invalid(entry) => AuthError::InvalidAllowlist {
                    tenant: self.tenant.id.clone(),
                    entry,
                },
                Refusal::Outside(address) => AuthError::AddressNotAllowed {
                    address,
                    tenant: self.tenant.id.clone(),
                },
            })
    }

    /// A service client of the tenant.
    pub fn client(&self, id: &ClientId) -> Option<&ServiceClient> {
        self.clients.get(id)
    }

    /// Whether a token id issued by this gateway was revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains(jti)
    }

    /// The principal for `identity`, with roles and groups from the directory plus those a
    /// token's claims add; `default_role` applies to a user who is neither a member nor given
    /// a role by the token.
    pub fn principal(
        &self,
        identity: Identity,
        claim_roles: Vec<Role>,
        claim_groups: Vec<GroupName>,
        default_role: Option<&Role>,
        credential: Credential,
    ) -> Result<Principal, AuthError> {
        let (mut roles, mut groups) = (claim_roles, claim_groups);
        match &identity {
            Identity::User(user) => {
                if let Some(role) = self.members.get(user) {
                    roles.push(role.clone());
                }
                groups.extend(self.groups_of.get(user).into_iter().flatten().cloned());
                if roles.is_empty() {
                    match default_role {
                        Some(role) => roles.push(role.clone()),
                        None => {
                            return Err(AuthError::NotAMember(
                                user.to_string(),
                                self.tenant.id.clone(),
                            ));
                        }
                    }
                }
            }
            Identity::Client(client) => match self.clients.get(client) {
                Some(c) if !c.disabled => roles.push(c.role.clone()),
                _ => {
                    return Err(AuthError::NotAMember(
                        format!("service client {client}"),
                        self.tenant.id.clone(),
                    ));
                }
            },
            Identity::Anonymous => {
                return Err(AuthError::MissingCredential);
            }
        }
        roles.sort();
        roles.dedup();
        groups.sort();
        groups.dedup();
        Ok(Principal {
            tenant: self.tenant.id.clone(),
            identity,
            roles,
            groups,
            credential,
            restrictions: Vec::new(),
            scopes: Vec::new(),
        })
    }
}

/// An API key with the principal it stands for, resolved when the snapshot was built.
pub struct KeyEntry {
    pub record: ApiKeyRecord,
    pub principal: Result<Arc<Principal>, AuthError>,
    /// The key's own client address ranges.
    allowlist: Allowlist,
}

impl KeyEntry {
    /// Whether the key may be used from `address`.
    pub fn admits(&self, address: Option<IpAddr>) -> Result<(), AuthError> {
        self.allowlist
            .check(address)
            .map_err(|refusal| match refusal {
                Refusal::Invalid(entry) => AuthError::InvalidKeyAllowlist {
                    key: self.record.id.clone(),
                    entry,
                },
                Refusal::Outside(address) => AuthError::KeyAddressNotAllowed {
                    address,
                    key: self.record.id.clone(),
                },
            })
    }
}

/// Client address ranges (a tenant's or a key's): empty admits every address; an entry that
/// does not parse refuses every request (fail closed) until it is fixed.
struct Allowlist(Result<Vec<IpNet>, String>);

/// Why an address was refused.
enum Refusal {
    /// The entry that does not parse.
    Invalid(String),
    /// The address, as shown in the refusal.
    Outside(String),
}

impl Allowlist {
    /// Parses addresses and CIDR ranges (a bare address is a range of one).
    fn parse(entries: &[String]) -> Self {
        Self(parse_ranges(entries))
    }

    fn check(&self, address: Option<IpAddr>) -> Result<(), Refusal> {
        let ranges = self
            .0
            .as_ref()
            .map_err(|entry| Refusal::Invalid(entry.clone()))?;
        if ranges.is_empty() {
            return Ok(());
        }
        match address {
            // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
            Some(ip) if ranges.iter().any(|r| r.contains(&ip.to_canonical())) => Ok(()),
            _ => Err(Refusal::Outside(
                address.map_or_else(|| "(unknown)".into(), |ip| ip.to_string()),
            )),
        }
    }
}

/// Parses CIDR ranges; a bare address is a range of one.
fn parse_ranges(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| entry.to_owned())
        })
        .collect()
}

/// The compiled directory.
#[derive(Default)]
pub struct Snapshot {
    pub revision: i64,
    tenants: HashMap<TenantId, Arc<TenantEntry>>,
    domains: HashMap<String, TenantId>,
    keys: HashMap<String, KeyEntry>,
    issuers: HashMap<String, Vec<Arc<TrustedIssuer>>>,
}

impl Snapshot {
    /// Compiles a directory.
    pub fn build(directory: Directory) -> Self {
        let mut snapshot = Snapshot {
            revision: directory.revision,
            ..Default::default()
        };
        for dir in directory.tenants {
            let id = dir.tenant.id.clone();
            let mut groups_of: HashMap<UserId, Vec<GroupName>> = HashMap::new();
            for group in &dir.groups {
                for member in &group.members {
                    groups_of
                        .entry(member.clone())
                        .or_default()
                        .push(group.name.clone());
                }
            }
            let allowlist = Allowlist::parse(&dir.tenant.settings.ip_allowlist);
            let entry = Arc::new(TenantEntry {
                allowlist,
                policy: Arc::new(Policy::new(id.clone(), dir.grants, dir.roles)),
                members: dir.members.into_iter().map(|m| (m.user, m.role)).collect(),
                groups_of,
                clients: dir.clients.into_iter().map(|c| (c.id.clone(), c)).collect(),
                revoked: dir.revoked_tokens.into_iter().collect(),
                tenant: dir.tenant,
            });
            for domain in &entry.tenant.domains {
                snapshot
                    .domains
                    .insert(domain.to_ascii_lowercase(), id.clone());
            }
            for issuer in dir.issuers {
                let static_keys = issuer.jwks.as_deref().map(KeySet::from_jwks);
                snapshot
                    .issuers
                    .entry(issuer.issuer.clone())
                    .or_default()
                    .push(Arc::new(TrustedIssuer {
                        config: issuer,
                        static_keys,
                    }));
            }
            for record in dir.api_keys {
                let identity = match &record.owner {
                    KeyOwner::User(u) => Identity::User(u.clone()),
                    KeyOwner::Client(c) => Identity::Client(c.clone()),
                };
                let credential = Credential {
                    kind: CredentialKind::ApiKey,
                    id: record.id.clone(),
                };
                let principal = entry
                    .principal(identity, Vec::new(), Vec::new(), None, credential)
                    .map(|mut p| {
                        p.restrictions = record.restrictions.clone();
                        Arc::new(p)
                    });
                let allowlist = Allowlist::parse(&record.ip_allowlist);
                snapshot.keys.insert(
                    record.id.clone(),
                    KeyEntry {
                        record,
                        principal,
                        allowlist,
                    },
                );
            }
            snapshot.tenants.insert(id, entry);
        }
        snapshot
    }

    /// No tenants configured: the gateway serves the built-in `default` tenant without
    /// credentials (single-tenant backward compatibility).
    pub fn is_open(&self) -> bool {
        self.tenants.is_empty()
    }

    /// A tenant by id.
    pub fn tenant(&self, id: &TenantId) -> Option<&Arc<TenantEntry>> {
        self.tenants.get(id)
    }

    /// The tenant owning a host name.
    pub fn tenant_by_domain(&self, host: &str) -> Option<&TenantId> {
        self.domains.get(host)
    }

    /// An API key by public id.
    pub fn key(&self, id: &str) -> Option<&KeyEntry> {
        self.keys.get(id)
    }

    /// The tenants trusting an issuer.
    pub fn issuers(&self, iss: &str) -> &[Arc<TrustedIssuer>] {
        self.issuers.get(iss).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The issuers `tenant` trusts.
    pub fn issuers_of(&self, tenant: &TenantId) -> Vec<String> {
        let mut out: Vec<String> = self
            .issuers
            .iter()
            .filter(|(_, list)| list.iter().any(|i| &i.config.tenant == tenant))
            .map(|(iss, _)| iss.clone())
            .collect();
        out.sort();
        out
    }

    /// All tenants.
    pub fn tenants(&self) -> impl Iterator<Item = &Arc<TenantEntry>> {
        self.tenants.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(allowlist: &[&str]) -> KeyEntry {
        let record = ApiKeyRecord {
            id: "k1".into(),
            tenant: TenantId::new("acme").unwrap(),
            name: "k".into(),
            owner: KeyOwner::User(UserId::new("ada@acme.com").unwrap()),
            hash: Vec::new(),
            restrictions: Vec::new(),
            expires_at: None,
            revoked_at: None,
            created_at: 0,
            quotas: None,
            ip_allowlist: allowlist.iter().map(|s| (*s).to_owned()).collect(),
        };
        KeyEntry {
            allowlist: Allowlist::parse(&record.ip_allowlist),
            record,
            principal: Err(AuthError::UnknownKey),
        }
    }

    #[test]
    fn a_key_s_allowlist_admits_its_ranges_and_fails_closed() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let fenced = entry(&["10.0.0.0/8", "192.0.2.7"]);
        assert!(fenced.admits(ip("10.9.9.9")).is_ok());
        assert!(
            fenced.admits(ip("::ffff:10.9.9.9")).is_ok(),
            "IPv4 on a dual-stack socket"
        );
        assert!(fenced.admits(ip("192.0.2.7")).is_ok());
        assert!(matches!(
            fenced.admits(ip("192.0.2.8")),
            Err(AuthError::KeyAddressNotAllowed { .. })
        ));
        assert!(
            fenced.admits(None).is_err(),
            "an unknown address is refused"
        );
        assert!(entry(&[]).admits(None).is_ok());
        let broken = entry(&["10.0.0.0/8", "not-a-range"]);
        assert!(matches!(
            broken.admits(ip("10.0.0.1")),
            Err(AuthError::InvalidKeyAllowlist { .. })
        ));
    }
}
