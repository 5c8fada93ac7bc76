//! The master keys: one primary (wraps new data keys, and every data key after a rotation)
//! and any number of previous ones (unwrap only), each known by its public id. Rotation with
//! no downtime: configure the new key as primary and the old one as previous on every
//! replica, run `switchboard secrets rotate-key`, then drop the old key.

use crate::envelope::{EnvelopeError, Key};

/// Master keys by role.
#[derive(Debug)]
pub struct Keyring {
    primary: Key,
    previous: Vec<Key>,
}

/// Parses a master key written as 64 hex digits or as base64 of 32 bytes.
pub fn parse_master_key(text: &str) -> Result<Key, String> {
    use base64::Engine;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| "a master key is 64 hex digits or the base64 of 32 bytes".to_owned())?
    };
    let key = Key::from_bytes(&bytes).map_err(|e| match e {
        EnvelopeError::KeyLength(n) => format!("a master key is 32 bytes, this one is {n}"),
        other => other.to_string(),
    });
    let mut bytes = bytes;
    zeroize::Zeroize::zeroize(&mut bytes);
    key
}

impl Keyring {
    pub fn new(primary: Key, previous: Vec<Key>) -> Self {
        Self { primary, previous }
    }

    /// The key that wraps.
    pub fn primary(&self) -> &Key {
        &self.primary
    }

    /// The key with this public id, primary or previous.
    pub fn find(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.primary)
            .chain(&self.previous)
            .find(|k| k.id() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys_parse_from_hex_or_base64() {
        let hex = "00".repeat(31) + "ff";
        let from_hex = parse_master_key(&hex).unwrap();
        assert_eq!(from_hex.bytes()[31], 0xff);
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8=";
        assert_eq!(parse_master_key(b64).unwrap().id(), from_hex.id());
        assert!(parse_master_key("short").is_err());
        assert!(parse_master_key("AAAA").unwrap_err().contains("32 bytes"));
    }

    #[test]
    fn keys_are_found_by_id_in_either_role() {
        let (a, b) = (Key::generate().unwrap(), Key::generate().unwrap());
        let (a_id, b_id) = (a.id(), b.id());
        let ring = Keyring::new(a, vec![b]);
        assert_eq!(ring.primary().id(), a_id);
        assert!(ring.find(&b_id).is_some() && ring.find(&a_id).is_some());
        assert!(ring.find("0000000000000000").is_none());
    }
}
