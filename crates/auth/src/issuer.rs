//! Switchboard as its own token issuer: short-lived ES256 JWTs for service clients (OAuth
//! client-credentials) and for users (`switchboard token issue`), its JWKS, and the
//! authorization-server metadata.
//!
//! Tokens name the tenant (`tenant`), the subject (`sub` = `user:<email>` or
//! `client:<id>`) and carry a `jti` so they can be revoked. Roles and groups are *not* taken
//! from the token: they are looked up in the current snapshot at every request, so a role
//! change or removal is effective at once.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use switchboard_domain::tenancy::{Identity, TenantId};

use crate::keys::{KeySet, VerifyKey};

/// One stored signing key (private part as PKCS#8 DER).
#[derive(Clone)]
pub struct SigningKeyMaterial {
    pub kid: String,
    pub pkcs8: Vec<u8>,
    pub retired: bool,
}

impl std::fmt::Debug for SigningKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyMaterial")
            .field("kid", &self.kid)
            .field("retired", &self.retired)
            .finish()
    }
}

/// Generates a new P-256 signing key: `(kid, pkcs8, public JWK)`.
pub fn generate_signing_key() -> Result<(String, Vec<u8>, String), String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "generating a P-256 key failed".to_string())?;
    let pkcs8 = pkcs8.as_ref().to_vec();
    let (kid, jwk) = public_jwk(&pkcs8)?;
    Ok((kid, pkcs8, jwk.to_string()))
}

fn public_jwk(pkcs8: &[u8]) -> Result<(String, serde_json::Value), String> {
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &SystemRandom::new(),
    )
    .map_err(|_| "the stored signing key is not a P-256 PKCS#8 key".to_string())?;
    let point = pair.public_key().as_ref();
    // Uncompressed SEC1 point: 0x04 || X (32 bytes) || Y (32 bytes).
    if point.len() != 65 || point[0] != 4 {
        return Err("unexpected public key encoding".into());
    }
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..]);
    let kid = kid_of(point);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": x, "y": y,
    });
    Ok((kid, jwk))
}

/// A key id derived from the public key (first 16 bytes of its SHA-256, base64url), so the
/// same key has the same id on every replica.
fn kid_of(public_point: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, public_point);
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// The claims of a token this gateway issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub tenant: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// A token that was just issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: i64,
}

/// The gateway's issuer: its signing key and the public keys it still accepts.
pub struct GatewayIssuer {
    issuer: String,
    signing: Option<(String, EncodingKey)>,
    verify: KeySet,
    jwks: serde_json::Value,
}

impl std::fmt::Debug for GatewayIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayIssuer")
            .field("issuer", &self.issuer)
            .field("verify", &self.verify)
            .finish()
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl GatewayIssuer {
    /// An issuer named `issuer` (the gateway's public base URL) with its stored keys; the
    /// newest key that is not retired signs, all keys verify (so tokens signed before a
    /// rotation stay valid until they expire).
    pub fn new(issuer: String, keys: &[SigningKeyMaterial]) -> Result<Self, String> {
        let mut verify = KeySet::default();
        let mut published = Vec::new();
        let mut signing = None;
        for key in keys {
            let (kid, jwk) = public_jwk(&key.pkcs8)?;
            if kid != key.kid {
                return Err(format!(
                    "signing key {} does not match its stored id",
                    key.kid
                ));
            }
            let x = jwk["x"].as_str().unwrap_or_default();
            let y = jwk["y"].as_str().unwrap_or_default();
            let decoding = DecodingKey::from_ec_components(x, y)
                .map_err(|e| format!("signing key {kid}: {e}"))?;
            verify.insert(
                kid.clone(),
                VerifyKey {
                    key: decoding,
                    algorithms: vec![Algorithm::ES256],
                },
            );
            published.push(jwk);
            if !key.retired {
                signing = Some((kid, EncodingKey::from_ec_der(&key.pkcs8)));
            }
        }
        Ok(Self {
            issuer,
            signing,
            verify,
            jwks: serde_json::json!({ "keys": published }),
        })
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// The verification keys.
    pub fn keys(&self) -> &KeySet {
        &self.verify
    }

    /// Signs a token for `identity` in `tenant`, valid for `ttl_secs`.
    pub fn issue(
        &self,
        tenant: &TenantId,
        identity: &Identity,
        audience: &str,
        ttl_secs: i64,
        scope: &str,
    ) -> Result<IssuedToken, String> {
        let (kid, key) = self
            .signing
            .as_ref()
            .ok_or("the gateway has no active signing key")?;
        let sub = match identity {
            Identity::User(u) => format!("user:{u}"),
            Identity::Client(c) => format!("client:{c}"),
            Identity::Anonymous => return Err("anonymous callers get no tokens".into()),
        };
        let iat = now();
        let jti = uuid_like();
        let claims = IssuedClaims {
            iss: self.issuer.clone(),
            sub,
            aud: audience.to_owned(),
            tenant: tenant.to_string(),
            jti: jti.clone(),
            iat,
            exp: iat + ttl_secs,
            scope: scope.to_owned(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, key).map_err(|e| e.to_string())?;
        Ok(IssuedToken {
            token,
            jti,
            expires_at: claims.exp,
        })
    }
}

fn uuid_like() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    // See api_key::random_bytes: no entropy means no tokens.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}
