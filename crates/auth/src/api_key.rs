//! API keys: `sb_<id>_<secret>`.
//!
//! The `sb_` prefix makes a leaked key recognisable to secret scanners; the 12-character id
//! is public (shown in listings, logged, used to find the record without a scan); the secret
//! is 32 random bytes. Only an HMAC-SHA256 of the secret under the gateway's key-hashing key
//! is stored, so a copy of the database alone cannot be used to forge or test keys, and the
//! presented secret is compared with the stored hash in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use subtle::ConstantTimeEq;

/// The prefix of every Switchboard API key.
pub const PREFIX: &str = "sb_";
/// The prefix of platform admin tokens (same shape, another prefix: one is never taken for
/// the other, and a scanner can tell a platform credential from a tenant's key).
pub const ADMIN_PREFIX: &str = "sba_";
/// Length of the public id.
pub const ID_LEN: usize = 12;
const ID_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// The secret that keys the hashes of API keys and client secrets. Held out of the database
/// (environment or a file in the data folder) and shared by all replicas.
pub struct HashingKey(hmac::Key);

impl HashingKey {
    /// A hashing key from secret bytes (at least 32).
    pub fn new(secret: &SecretBox<[u8]>) -> Result<Self, String> {
        let bytes = secret.expose_secret();
        if bytes.len() < 32 {
            return Err(format!(
                "the key-hashing secret has {} bytes; at least 32 are needed",
                bytes.len()
            ));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// Generates 32 random bytes for a new hashing key.
    pub fn generate_secret() -> Vec<u8> {
        random_bytes::<32>().to_vec()
    }

    /// The keyed hash of a secret.
    pub fn hash(&self, secret: &[u8]) -> Vec<u8> {
        hmac::sign(&self.0, secret).as_ref().to_vec()
    }

    /// Whether `secret` hashes to `stored`, in constant time.
    pub fn verify(&self, secret: &[u8], stored: &[u8]) -> bool {
        let computed = hmac::sign(&self.0, secret);
        computed.as_ref().ct_eq(stored).into()
    }
}

impl std::fmt::Debug for HashingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashingKey(<redacted>)")
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // SystemRandom only fails when the OS has no entropy source; nothing can be issued then.
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// A freshly generated key: the full text is shown once, the hash is stored.
pub struct NewKey {
    pub id: String,
    pub text: SecretString,
    pub hash: Vec<u8>,
}

/// Generates a key.
pub fn generate(hashing: &HashingKey) -> NewKey {
    generate_with(PREFIX, hashing)
}

/// Generates a credential shaped like a key under another prefix ([`ADMIN_PREFIX`]).
pub fn generate_with(prefix: &str, hashing: &HashingKey) -> NewKey {
    let id: String = random_bytes::<ID_LEN>()
        .iter()
        .map(|b| ID_ALPHABET[(*b as usize) % ID_ALPHABET.len()] as char)
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hash = hashing.hash(secret.as_bytes());
    NewKey {
        text: SecretString::from(format!("{prefix}{id}_{secret}")),
        id,
        hash,
    }
}

/// A presented key split into its public id and secret.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

/// Splits `sb_<id>_<secret>`; `None` when the text is not shaped like a Switchboard key.
pub fn parse(text: &str) -> Option<Presented<'_>> {
    parse_with(PREFIX, text)
}

/// Splits `<prefix><id>_<secret>`.
pub fn parse_with<'a>(prefix: &str, text: &'a str) -> Option<Presented<'a>> {
    let rest = text.strip_prefix(prefix)?;
    if rest.len() < ID_LEN + 2 || rest.as_bytes()[ID_LEN] != b'_' {
        return None;
    }
    let (id, secret) = (&rest[..ID_LEN], &rest[ID_LEN + 1..]);
    let id_ok = id.bytes().all(|b| ID_ALPHABET.contains(&b));
    let secret_ok = secret.len() <= 128
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some(Presented { id, secret })
}

/// Whether a bearer value looks like a Switchboard API key (rather than a JWT).
pub fn looks_like_key(text: &str) -> bool {
    text.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashing() -> HashingKey {
        HashingKey::new(&SecretBox::from(vec![7u8; 32])).unwrap()
    }

    #[test]
    fn generated_keys_parse_and_verify() {
        let h = hashing();
        let key = generate(&h);
        let text = key.text.expose_secret();
        assert!(text.starts_with("sb_"));
        let presented = parse(text).unwrap();
        assert_eq!(presented.id, key.id);
        assert!(h.verify(presented.secret.as_bytes(), &key.hash));
        assert!(!h.verify(b"other", &key.hash));
        // Another gateway's hashing key does not verify it.
        let other = HashingKey::new(&SecretBox::from(vec![8u8; 32])).unwrap();
        assert!(!other.verify(presented.secret.as_bytes(), &key.hash));
    }

    #[test]
    fn admin_tokens_and_api_keys_are_never_taken_for_each_other() {
        let h = hashing();
        let admin = generate_with(ADMIN_PREFIX, &h);
        let text = admin.text.expose_secret();
        assert!(text.starts_with("sba_"));
        assert!(parse(text).is_none());
        assert!(!looks_like_key(text));
        assert_eq!(parse_with(ADMIN_PREFIX, text).unwrap().id, admin.id);
        let key = generate(&h);
        assert!(parse_with(ADMIN_PREFIX, key.text.expose_secret()).is_none());
    }

    #[test]
    fn malformed_keys_are_not_parsed() {
        for bad in [
            "",
            "sb_",
            "sb_short_x",
            "xx_abcdefghijkm_secret",
            "sb_ABCDEFGHIJKM_secret",
            "sb_abcdefghijkm-secret",
            "sb_abcdefghijkm_sec ret",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} parsed");
        }
        let long = format!("sb_abcdefghijkm_{}", "a".repeat(10_000));
        assert!(parse(&long).is_none());
    }

    #[test]
    fn short_hashing_secrets_are_refused() {
        assert!(HashingKey::new(&SecretBox::from(vec![1u8; 8])).is_err());
    }
}
