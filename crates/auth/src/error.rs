//! Why a request was not authenticated, and how that is answered.

use switchboard_domain::tenancy::{IdError, TenantId};

/// An authentication or tenant-resolution failure. Each variant maps to one HTTP status and,
/// for bearer failures, an RFC 6750 error code; messages say what to fix and never contain
/// the presented secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs a credential: send `Authorization: Bearer <API key or token>`")]
    MissingCredential,
    #[error("the Authorization header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("API key not recognised: check that it was copied whole and has not been deleted")]
    UnknownKey,
    #[error("API key {0} has been revoked; create a new one")]
    RevokedKey(String),
    #[error("API key {0} has expired; create a new one")]
    ExpiredKey(String),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the token has expired; obtain a new one")]
    ExpiredToken,
    #[error("the token is not valid yet (nbf is in the future); check the issuer's clock")]
    TokenNotYetValid,
    #[error("the token has been revoked")]
    RevokedToken,
    #[error(
        "token issuer {0:?} is not trusted by this tenant; an admin must add it as a trusted issuer"
    )]
    UntrustedIssuer(String),
    #[error("the tenant id is not valid: {0}")]
    InvalidTenant(IdError),
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    #[error(
        "the credential belongs to tenant \"{credential}\" but the request names tenant \"{requested}\"; use the endpoint of the credential's tenant"
    )]
    TenantMismatch {
        credential: TenantId,
        requested: TenantId,
    },
    #[error("the request names two different tenants ({first:?} and {second:?}); name one")]
    ConflictingTenants { first: String, second: String },
    #[error("tenant \"{0}\" is suspended; its administrators must contact the gateway operator")]
    Suspended(TenantId),
    #[error("{0} is not a member of tenant \"{1}\"; a tenant admin must add them")]
    NotAMember(String, TenantId),
    #[error(
        "client address {address} is not in tenant \"{tenant}\"'s IP allowlist (settings ipAllowlist); a tenant admin must add it"
    )]
    AddressNotAllowed { address: String, tenant: TenantId },
    #[error(
        "tenant \"{tenant}\"'s IP allowlist entry {entry:?} is not an address or CIDR range (e.g. 10.0.0.0/8); requests are refused until an admin fixes it"
    )]
    InvalidAllowlist { tenant: TenantId, entry: String },
    #[error(
        "client address {address} is not in API key {key}'s IP allowlist; use the key from an allowed address or ask a tenant admin"
    )]
    KeyAddressNotAllowed { address: String, key: String },
    #[error(
        "API key {key}'s IP allowlist entry {entry:?} is not an address or CIDR range; the key is refused until an admin fixes it"
    )]
    InvalidKeyAllowlist { key: String, entry: String },
    #[error("the token lacks the required scope(s): {}", .0.join(" "))]
    InsufficientScope(Vec<String>),
    #[error(
        "issuer {0:?} is trusted by several tenants; name the tenant with /t/{{tenant}}/… or X-Tenant-ID"
    )]
    AmbiguousTenant(String),
    #[error("credentials cannot be checked right now ({0}); retry shortly")]
    Unavailable(String),
}

impl AuthError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingCredential
            | Self::MalformedHeader(_)
            | Self::UnknownKey
            | Self::RevokedKey(_)
            | Self::ExpiredKey(_)
            | Self::InvalidToken(_)
            | Self::ExpiredToken
            | Self::TokenNotYetValid
            | Self::RevokedToken
            | Self::UntrustedIssuer(_) => 401,
            Self::InvalidTenant(_) | Self::ConflictingTenants { .. } | Self::AmbiguousTenant(_) => {
                400
            }
            Self::UnknownTenant(_) => 404,
            Self::TenantMismatch { .. }
            | Self::Suspended(_)
            | Self::NotAMember(..)
            | Self::AddressNotAllowed { .. }
            | Self::InvalidAllowlist { .. }
            | Self::KeyAddressNotAllowed { .. }
            | Self::InvalidKeyAllowlist { .. }
            | Self::InsufficientScope(_) => 403,
            Self::Unavailable(_) => 503,
        }
    }

    /// The RFC 6750 `error` for the `WWW-Authenticate` header, if any.
    pub fn bearer_error(&self) -> Option<&'static str> {
        match self.status() {
            401 if *self != Self::MissingCredential => Some("invalid_token"),
            403 if matches!(self, Self::InsufficientScope(_)) => Some("insufficient_scope"),
            400 => Some("invalid_request"),
            _ => None,
        }
    }

    /// Whether the request named tenants that disagree — a credential of one tenant on
    /// another's endpoint, or two different tenants in path, header or host: recorded as a
    /// cross-tenant attempt.
    pub fn is_cross_tenant(&self) -> bool {
        matches!(
            self,
            Self::TenantMismatch { .. } | Self::ConflictingTenants { .. }
        )
    }
}
