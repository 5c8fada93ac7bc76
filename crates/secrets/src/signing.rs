//! The gateway's own token signing keys at rest: sealed under the master key (AES-256-GCM,
//! the key id bound as associated data), so a copy of the database alone cannot mint tokens.
//!
//! Stored form: `SBK1`, the master key's id length (one byte) and id, then the sealed
//! PKCS#8. A PKCS#8 document begins with a DER sequence (0x30), never `S`, so keys stored in
//! the clear by earlier versions are recognised and sealed on their next load.

use zeroize::Zeroizing;

use crate::envelope::EnvelopeError;
use crate::keyring::Keyring;

const MAGIC: &[u8; 4] = b"SBK1";

fn aad(kid: &str) -> Vec<u8> {
    format!("switchboard/signing-key/v1\0{kid}").into_bytes()
}

/// Why a stored signing key cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(
        "token signing key {kid} is sealed under master key {master}, which is not configured: every replica and CLI run must use the same master key (secrets.master_key or master_key_file; earlier keys in secrets.previous_master_key_files)"
    )]
    UnknownMaster { kid: String, master: String },
    #[error("signing key {kid} is damaged or sealed for another key id")]
    Damaged { kid: String },
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// Seals the PKCS#8 of key `kid` under the primary master key.
pub fn seal_signing_key(
    keyring: &Keyring,
    kid: &str,
    pkcs8: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let master = keyring.primary();
    let id = master.id();
    let mut out = Vec::with_capacity(5 + id.len() + pkcs8.len() + 32);
    out.extend_from_slice(MAGIC);
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&master.seal(&aad(kid), pkcs8)?);
    Ok(out)
}

/// How a key is stored.
pub enum Stored<'a> {
    /// In the clear (written before keys were sealed).
    Plain,
    /// Sealed under the master key with this id.
    Sealed { master: &'a str, sealed: &'a [u8] },
}

/// Reads the stored form.
pub fn stored_form(stored: &[u8]) -> Stored<'_> {
    let Some(rest) = stored.strip_prefix(MAGIC) else {
        return Stored::Plain;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return Stored::Plain;
    };
    let len = usize::from(len);
    match (rest.get(..len), rest.get(len..)) {
        (Some(id), Some(sealed)) => match std::str::from_utf8(id) {
            Ok(master) => Stored::Sealed { master, sealed },
            Err(_) => Stored::Plain,
        },
        _ => Stored::Plain,
    }
}

/// The PKCS#8 of key `kid` as stored (sealed, or in the clear from an earlier version).
pub fn open_signing_key(
    keyring: &Keyring,
    kid: &str,
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    match stored_form(stored) {
        Stored::Plain => Ok(Zeroizing::new(stored.to_vec())),
        Stored::Sealed { master, sealed } => {
            let key = keyring
                .find(master)
                .ok_or_else(|| SigningKeyError::UnknownMaster {
                    kid: kid.to_owned(),
                    master: master.to_owned(),
                })?;
            key.open(&aad(kid), sealed)
                .map_err(|_| SigningKeyError::Damaged {
                    kid: kid.to_owned(),
                })
        }
    }
}

/// Whether the stored key should be written again: in the clear, or sealed under a master
/// key that is not the primary (after a rotation).
pub fn needs_sealing(keyring: &Keyring, stored: &[u8]) -> bool {
    match stored_form(stored) {
        Stored::Plain => true,
        Stored::Sealed { master, .. } => master != keyring.primary().id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Key;

    #[test]
    fn sealed_keys_open_only_for_their_kid_and_with_their_master() {
        let old = Key::generate().unwrap();
        let ring = Keyring::new(Key::from_bytes(old.bytes()).unwrap(), vec![]);
        let pkcs8 = [0x30, 0x81, 1, 2, 3, 4];
        let sealed = seal_signing_key(&ring, "k1", &pkcs8).unwrap();
        assert!(!sealed.windows(pkcs8.len()).any(|w| w == pkcs8));
        assert_eq!(*open_signing_key(&ring, "k1", &sealed).unwrap(), pkcs8);
        assert!(matches!(
            open_signing_key(&ring, "k2", &sealed),
            Err(SigningKeyError::Damaged { .. })
        ));
        assert!(!needs_sealing(&ring, &sealed));
        assert!(needs_sealing(&ring, &pkcs8), "a key in the clear is sealed");
        assert_eq!(*open_signing_key(&ring, "k1", &pkcs8).unwrap(), pkcs8);

        // After a rotation: still opens with the previous key, and wants re-sealing.
        let rotated = Keyring::new(Key::generate().unwrap(), vec![old]);
        assert_eq!(*open_signing_key(&rotated, "k1", &sealed).unwrap(), pkcs8);
        assert!(needs_sealing(&rotated, &sealed));
        let alone = Keyring::new(Key::generate().unwrap(), vec![]);
        assert!(matches!(
            open_signing_key(&alone, "k1", &sealed),
            Err(SigningKeyError::UnknownMaster { .. })
        ));
    }
}
