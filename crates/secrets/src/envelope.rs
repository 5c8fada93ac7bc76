//! Envelope encryption, pure: AES-256-GCM with a random 96-bit nonce per message and the
//! associated data that binds a ciphertext to where it belongs (a data key to its tenant, a
//! secret to its tenant, owner and name), so a row copied elsewhere does not decrypt.
//!
//! ring's AEAD is used because ring is already in the build (rustls, jsonwebtoken) and is
//! the field's audited implementation; nothing here is hand-rolled cryptography, only the
//! framing (nonce ‖ ciphertext-and-tag).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// A 256-bit key, wiped from memory when dropped.
pub struct Key(Zeroizing<[u8; 32]>);

/// Why a key or a ciphertext is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("a key must be 32 bytes, not {0}")]
    KeyLength(usize),
    /// Wrong key, wrong associated data, or an altered ciphertext: indistinguishable, on
    /// purpose.
    #[error("cannot decrypt: wrong key, or the value was altered or moved")]
    Open,
    #[error("the operating system's random number generator failed")]
    Random,
}

impl Key {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| EnvelopeError::KeyLength(bytes.len()))?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| EnvelopeError::Random)?;
        Ok(Self(bytes))
    }

    /// The raw bytes (to wrap this key under another).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.0.as_ref()).expect("32-byte key"))
    }

    /// Encrypts `plain`, bound to `aad`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EnvelopeError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| EnvelopeError::Open)?;
        out.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    /// Decrypts what [`Key::seal`] made with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(EnvelopeError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Open)?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain_len = self
            .aead()
            .open_in_place(nonce, Aad::from(aad), body.as_mut_slice())
            .map_err(|_| EnvelopeError::Open)?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }

    /// A short public id of the key: the first 8 bytes of its SHA-256, hex. Says which key
    /// wrapped a data key without revealing anything usable.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.0.as_ref())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

/// The associated data of a tenant's wrapped data key.
pub fn data_key_aad(tenant: &str) -> Vec<u8> {
    format!("switchboard/data-key/v1\0{tenant}").into_bytes()
}

/// The associated data of a secret: tenant, owner (a user, or empty for the tenant's own)
/// and name.
pub fn secret_aad(tenant: &str, owner: &str, name: &str) -> Vec<u8> {
    format!("switchboard/secret/v1\0{tenant}\0{owner}\0{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let key = Key::generate().unwrap();
        let aad = secret_aad("acme", "", "github_token");
        let sealed = key.seal(&aad, b"ghp_secret").unwrap();
        assert!(
            !sealed.windows(10).any(|w| w == b"ghp_secret"),
            "not stored in clear"
        );
        assert_eq!(key.open(&aad, &sealed).unwrap().as_slice(), b"ghp_secret");
        // Same plaintext, fresh nonce: different ciphertexts.
        assert_ne!(key.seal(&aad, b"ghp_secret").unwrap(), sealed);
        // Moved to another tenant, owner or name: refused.
        for other in [
            secret_aad("globex", "", "github_token"),
            secret_aad("acme", "ada@acme.com", "github_token"),
            secret_aad("acme", "", "other"),
        ] {
            assert_eq!(key.open(&other, &sealed).unwrap_err(), EnvelopeError::Open);
        }
        // Another key, or one flipped bit: refused.
        assert!(Key::generate().unwrap().open(&aad, &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.open(&aad, &altered).is_err());
        assert!(key.open(&aad, &sealed[..10]).is_err());
    }

    #[test]
    fn keys_have_stable_public_ids_and_checked_lengths() {
        let key = Key::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!(key.id(), Key::from_bytes(&[7u8; 32]).unwrap().id());
        assert_eq!(key.id().len(), 16);
        assert_ne!(key.id(), Key::from_bytes(&[8u8; 32]).unwrap().id());
        assert_eq!(
            Key::from_bytes(&[1u8; 16]).unwrap_err(),
            EnvelopeError::KeyLength(16)
        );
        assert!(!format!("{key:?}").contains("7, 7"));
    }
}
