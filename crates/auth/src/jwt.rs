//! Bearer JWTs: from a tenant's trusted issuers or from this gateway's own issuer.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use switchboard_domain::tenancy::{
    ClientId, Credential, CredentialKind, GroupName, Identity, Principal, Role, TenantId, UserId,
};

use crate::error::AuthError;
use crate::keys::VerifyKey;
use crate::snapshot::{TenantEntry, TrustedIssuer};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// The unverified header facts used to choose a key.
pub struct Peeked {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub iss: String,
}

/// Reads the header and `iss` without verifying anything (only to pick the key).
pub fn peek(token: &str) -> Result<Peeked, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        AuthError::InvalidToken(format!("not an API key (sb_…) nor a well-formed JWT: {e}"))
    })?;
    if matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(AuthError::InvalidToken(
            "symmetric (HS*) signatures are not accepted; the issuer must sign with a published key".into(),
        ));
    }
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .ok_or_else(|| {
            AuthError::InvalidToken("the token's claims are not a JSON object".into())
        })?;
    let iss = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::InvalidToken("the token has no `iss` claim".into()))?
        .to_owned();
    Ok(Peeked {
        alg: header.alg,
        kid: header.kid,
        iss,
    })
}

/// Verifies signature, algorithm, `exp`, `nbf`, `iss` and `aud`; returns the claims.
pub fn verify(
    token: &str,
    peeked: &Peeked,
    key: &VerifyKey,
    audiences: &[&str],
) -> Result<Map<String, Value>, AuthError> {
    if !key.algorithms.contains(&peeked.alg) {
        return Err(AuthError::InvalidToken(format!(
            "algorithm {:?} does not match the issuer's key",
            peeked.alg
        )));
    }
    let mut validation = Validation::new(peeked.alg);
    validation.algorithms = vec![peeked.alg];
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[&peeked.iss]);
    validation.aud = Some(
        audiences
            .iter()
            .map(|a| a.to_string())
            .collect::<HashSet<_>>(),
    );
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::ExpiredToken,
                ErrorKind::ImmatureSignature => AuthError::TokenNotYetValid,
                ErrorKind::InvalidAudience => AuthError::InvalidToken(format!(
                    "the token's audience (aud) is not this gateway; request it for {}",
                    audiences.first().copied().unwrap_or_default()
                )),
                ErrorKind::InvalidIssuer => AuthError::InvalidToken("issuer mismatch".into()),
                ErrorKind::InvalidSignature => {
                    AuthError::InvalidToken("the signature does not verify".into())
                }
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::InvalidToken(format!("the token has no `{c}` claim"))
                }
                _ => AuthError::InvalidToken(e.to_string()),
            }
        })?;
    Ok(data.claims)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The scopes of a token (`scope` string or `scp` array).
pub fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut out = strings(claims.get("scope"));
    out.extend(strings(claims.get("scp")));
    out
}

fn credential(claims: &Map<String, Value>, iss: &str) -> Credential {
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    Credential {
        kind: CredentialKind::Jwt,
        id: format!("{iss}#{jti}"),
    }
}

/// Maps an external issuer's verified claims to a principal of `entry`'s tenant.
pub fn principal_from_issuer(
    issuer: &TrustedIssuer,
    entry: &TenantEntry,
    claims: &Map<String, Value>,
) -> Result<Principal, AuthError> {
    let mapping = &issuer.config.claims;
    if let Some(tenant_claim) = &mapping.tenant {
        let named = claims.get(tenant_claim).and_then(Value::as_str);
        if named != Some(entry.tenant.id.as_str()) {
            return Err(match named.map(TenantId::new) {
                Some(Ok(other)) => AuthError::TenantMismatch {
                    credential: other,
                    requested: entry.tenant.id.clone(),
                },
                _ => AuthError::InvalidToken(format!(
                    "the token's `{tenant_claim}` claim must name tenant {:?}",
                    entry.tenant.id.as_str()
                )),
            });
        }
    }
    let email = claims
        .get(&mapping.user)
        .and_then(Value::as_str)
        .or_else(|| {
            claims
                .get("sub")
                .and_then(Value::as_str)
                .filter(|s| s.contains('@'))
        })
        .ok_or_else(|| {
            AuthError::InvalidToken(format!(
                "the token has no `{}` claim with the user's email",
                mapping.user
            ))
        })?;
    let user = UserId::new(email).map_err(|e| AuthError::InvalidToken(e.to_string()))?;
    let roles = mapping
        .roles
        .as_ref()
        .map(|c| strings(claims.get(c)))
        .unwrap_or_default()
        .iter()
        .filter_map(|r| Role::parse(r).ok())
        .collect();
    let groups = mapping
        .groups
        .as_ref()
        .map(|c| strings(claims.get(c)))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| GroupName::new(g).ok())
        .collect();
    let scopes = scopes(claims);
    let missing: Vec<String> = issuer
        .config
        .required_scopes
        .iter()
        .filter(|s| !scopes.contains(s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(AuthError::InsufficientScope(missing));
    }
    let mut principal = entry.principal(
        Identity::User(user),
        roles,
        groups,
        issuer.config.default_role.as_ref(),
        credential(claims, &issuer.config.issuer),
    )?;
    principal.scopes = scopes;
    Ok(principal)
}

/// The tenant named by a token of this gateway's own issuer.
pub fn own_tenant(claims: &Map<String, Value>) -> Result<TenantId, AuthError> {
    let raw = claims
        .get("tenant")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::InvalidToken("the token has no `tenant` claim".into()))?;
    TenantId::new(raw).map_err(|e| AuthError::InvalidToken(e.to_string()))
}

/// Maps a verified token of this gateway to a principal; roles come from the directory.
pub fn principal_from_own(
    entry: &TenantEntry,
    claims: &Map<String, Value>,
    iss: &str,
) -> Result<Principal, AuthError> {
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    if entry.is_revoked(jti) {
        return Err(AuthError::RevokedToken);
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let identity = if let Some(email) = sub.strip_prefix("user:") {
        Identity::User(UserId::new(email).map_err(|e| AuthError::InvalidToken(e.to_string()))?)
    } else if let Some(client) = sub.strip_prefix("client:") {
        Identity::Client(ClientId::new(client).map_err(|e| AuthError::InvalidToken(e.to_string()))?)
    } else {
        return Err(AuthError::InvalidToken(
            "the token's `sub` is neither user:… nor client:…".into(),
        ));
    };
    let mut principal = entry.principal(
        identity,
        Vec::new(),
        Vec::new(),
        None,
        credential(claims, iss),
    )?;
    principal.scopes = scopes(claims);
    Ok(principal)
}
