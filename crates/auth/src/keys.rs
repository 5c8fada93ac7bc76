//! Verification keys parsed from a JWKS document.
//!
//! Each key is pinned to the algorithms its type allows, so a token cannot choose its own
//! algorithm (no `none`, no HMAC with a public key as the secret: symmetric `oct` keys are
//! refused outright).

use std::collections::HashMap;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One usable verification key.
#[derive(Clone)]
pub struct VerifyKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

/// Keys by `kid` (a key without `kid` is stored under the empty string).
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl KeySet {
    /// Parses a JWKS document; keys for encryption or of unusable types are skipped, and a
    /// document without any usable key is an error.
    pub fn from_jwks(text: &str) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let Some(key) = usable(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
            }
        }
        if keys.is_empty() {
            return Err(
                "the JWKS holds no usable signing key (RSA, EC P-256/P-384 or Ed25519)".into(),
            );
        }
        Ok(Self { keys })
    }

    /// Adds one key.
    pub fn insert(&mut self, kid: String, key: VerifyKey) {
        self.keys.insert(kid, key);
    }

    /// The key a token names; a token without `kid` may use the only key of a one-key set.
    pub fn get(&self, kid: Option<&str>) -> Option<&VerifyKey> {
        match kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        }
    }

    /// Whether the set holds `kid`.
    pub fn contains(&self, kid: Option<&str>) -> bool {
        self.get(kid).is_some()
    }
}

fn usable(jwk: &Jwk) -> Option<VerifyKey> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return None;
    }
    let algorithms = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        // Symmetric keys have no place in a published key set.
        _ => return None,
    };
    // A key that names its algorithm is used with that one only.
    let algorithms = match jwk.common.key_algorithm.and_then(algorithm_of) {
        Some(alg) if algorithms.contains(&alg) => vec![alg],
        Some(_) => return None,
        None => algorithms,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey { key, algorithms })
}

fn algorithm_of(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_refused() {
        let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#;
        assert!(KeySet::from_jwks(oct).is_err());
        assert!(KeySet::from_jwks("{}").is_err());
        assert!(KeySet::from_jwks("nope").is_err());
    }

    #[test]
    fn ec_keys_are_pinned_to_their_curve() {
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        let set = KeySet::from_jwks(jwks).unwrap();
        assert_eq!(
            set.get(Some("a")).unwrap().algorithms,
            vec![Algorithm::ES256]
        );
        assert!(set.get(None).is_some(), "one key: kid optional");
        assert!(set.get(Some("b")).is_none());
    }
}
