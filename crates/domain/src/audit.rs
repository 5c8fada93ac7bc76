//! The audit trail as data: what one record says, how records of a tenant form a hash chain,
//! and how a chain is verified.
//!
//! Each tenant's records are numbered `1, 2, 3, …` and each one's hash covers the previous
//! record's hash and its own canonical text, so editing a record changes its hash, deleting
//! one leaves a gap, and reordering breaks the links; deleting the newest records is caught
//! by comparing with the chain's head, which is kept apart from the records.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::tenancy::TenantId;

/// The chain of events that belong to no tenant (e.g. a credential that names none).
pub const PLATFORM_CHAIN: &str = "_platform";

/// The hash before a tenant's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// A request refused by authentication (bad, expired, revoked credential…).
    AuthRefused,
    /// A credential of one tenant used on another's endpoint, or conflicting tenant names.
    CrossTenant,
    /// An authorization decision about a call (allowed or denied, with its reason).
    Decision,
    /// A tool call, prompt get or resource read that went upstream, with its result.
    Call,
    /// A change made through the admin API or CLI (before/after, secrets redacted).
    AdminChange,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthRefused => "auth.refused",
            Self::CrossTenant => "auth.cross_tenant",
            Self::Decision => "decision",
            Self::Call => "call",
            Self::AdminChange => "admin.change",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::AuthRefused,
            Self::CrossTenant,
            Self::Decision,
            Self::Call,
            Self::AdminChange,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event, before it is placed in its tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The tenant whose chain holds the event; `None` for the platform chain.
    pub tenant: Option<TenantId>,
    /// Unix time in milliseconds.
    pub at_ms: i64,
    pub kind: AuditKind,
    /// Who: `user:…`, `client:…`, `anonymous`, or empty when no credential was accepted.
    pub actor: String,
    /// Which credential: an API key's public id, a token's `jti`; never the secret.
    pub credential: String,
    /// What: `server/tool`, `server/prompt`, a resource URI, or the endpoint.
    pub target: String,
    /// `allowed`, `denied`, `ok`, `error`, `refused`.
    pub outcome: String,
    /// Why, in words (a policy reason, an error message).
    pub reason: String,
    /// Further facts as one JSON object text (client address, user agent, latency, argument
    /// digest…), stored and hashed exactly as written.
    pub detail: String,
}

impl AuditEvent {
    /// Replaces every NUL character in the event's text with U+FFFD. PostgreSQL cannot store
    /// NUL in text, and an upstream can name a tool with one (`"\u0000"` in JSON): left in,
    /// the record's batch could never be written and the audit backlog would fill until
    /// every request is refused. Done before the record is hashed, so the chain verifies
    /// on either database.
    pub fn replace_nul(&mut self) {
        for field in [
            &mut self.actor,
            &mut self.credential,
            &mut self.target,
            &mut self.outcome,
            &mut self.reason,
            &mut self.detail,
        ] {
            if field.contains('\0') {
                *field = field.replace('\0', "\u{FFFD}");
            }
        }
    }

    /// The chain's name: the tenant id, or [`PLATFORM_CHAIN`].
    pub fn chain(&self) -> &str {
        self.tenant
            .as_ref()
            .map_or(PLATFORM_CHAIN, TenantId::as_str)
    }
}

/// A record of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The record as one JSON object, as exported for SIEMs and answered by the admin API:
    /// `tenant` (the chain), `seq`, `at_ms`, `kind`, `actor`, `credential`, `target`,
    /// `outcome`, `reason`, `detail` (parsed), `prev_hash`, `hash`.
    pub fn to_json(&self) -> serde_json::Value {
        let e = &self.event;
        let detail: serde_json::Value =
            serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "tenant": e.chain(),
            "seq": self.seq,
            "at_ms": e.at_ms,
            "kind": e.kind.as_str(),
            "actor": e.actor,
            "credential": e.credential,
            "target": e.target,
            "outcome": e.outcome,
            "reason": e.reason,
            "detail": detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}

/// An event's place in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// The newest record of a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }

    /// Places `event` after this head; returns the record and moves the head to it.
    pub fn append(&mut self, event: AuditEvent) -> AuditRecord {
        let link = self.link(&event);
        AuditRecord {
            seq: link.seq,
            event,
            prev_hash: link.prev_hash,
            hash: link.hash,
        }
    }

    /// Places `event` after this head without taking it; returns its place in the chain and
    /// moves the head to it.
    pub fn link(&mut self, event: &AuditEvent) -> Link {
        let seq = self.seq + 1;
        let hash = record_hash(&self.hash, seq, event);
        self.seq = seq;
        Link {
            seq,
            prev_hash: std::mem::replace(&mut self.hash, hash.clone()),
            hash,
        }
    }
}

/// SHA-256 (hex) of the previous hash and the record's canonical text.
pub fn record_hash(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    /// Feeds serialized text straight into the digest (no intermediate copy of the record).
    struct Feed<'a>(&'a mut Sha256);
    impl std::io::Write for Feed<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // A JSON array: unambiguous field boundaries whatever the fields contain. Serialized
    // from borrowed fields, byte for byte the text `serde_json::json!([..]).to_string()`
    // gives (see the test), so chains written before stay verifiable.
    let canonical = (
        event.chain(),
        seq,
        event.at_ms,
        event.kind.as_str(),
        &event.actor,
        &event.credential,
        &event.target,
        &event.outcome,
        &event.reason,
        &event.detail,
    );
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    // Serializing strings and integers into a sink that cannot fail cannot fail.
    let _ = serde_json::to_writer(Feed(&mut hasher), &canonical);
    to_hex(&hasher.finalize())
}

/// Lowercase hexadecimal of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    text
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq} was edited: its content no longer matches its hash")]
    Edited { seq: i64 },
    #[error("record {expected} is missing (the next record is {found}): records were deleted")]
    Missing { expected: i64, found: i64 },
    #[error(
        "record {seq} does not follow the record before it (its previous hash differs): records were reordered or replaced"
    )]
    Unlinked { seq: i64 },
    #[error(
        "the chain ends at record {last} but its head is record {head}: the newest records were deleted"
    )]
    Truncated { last: i64, head: i64 },
    #[error("the chain's head does not match its newest record {seq}")]
    HeadMismatch { seq: i64 },
}

/// Checks a chain record by record (in `seq` order), so a long chain is read in pages.
#[derive(Debug)]
pub struct Verifier {
    prev: ChainHead,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            prev: ChainHead::genesis(),
        }
    }
}

impl Verifier {
    /// A verifier for a chain whose records up to `anchor` were removed by retention: the
    /// first remaining record must follow the anchor.
    pub fn starting_at(anchor: ChainHead) -> Self {
        Self { prev: anchor }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let prev = &self.prev;
        if record.seq != prev.seq + 1 {
            return Err(ChainBreak::Missing {
                expected: prev.seq + 1,
                found: record.seq,
            });
        }
        if record.prev_hash != prev.hash {
            return Err(ChainBreak::Unlinked { seq: record.seq });
        }
        if record_hash(&record.prev_hash, record.seq, &record.event) != record.hash {
            return Err(ChainBreak::Edited { seq: record.seq });
        }
        self.prev = ChainHead {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        Ok(())
    }

    /// The last record checked.
    pub fn last_seq(&self) -> i64 {
        self.prev.seq
    }

    /// Compares the end of the chain with its head; returns the number of records.
    pub fn finish(self, head: &ChainHead) -> Result<i64, ChainBreak> {
        let prev = self.prev;
        if prev.seq < head.seq {
            return Err(ChainBreak::Truncated {
                last: prev.seq,
                head: head.seq,
            });
        }
        if prev.seq != head.seq || prev.hash != head.hash {
            return Err(ChainBreak::HeadMismatch { seq: prev.seq });
        }
        Ok(prev.seq)
    }
}

/// Checks a chain's records, in `seq` order, against its head.
pub fn verify<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    head: &ChainHead,
) -> Result<i64, ChainBreak> {
    let mut verifier = Verifier::default();
    for record in records {
        verifier.push(record)?;
    }
    verifier.finish(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash as first written: the canonical text built as a `serde_json::Value`.
    fn hash_as_first_written(prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
        let canonical = serde_json::json!([
            event.chain(),
            seq,
            event.at_ms,
            event.kind.as_str(),
            event.actor,
            event.credential,
            event.target,
            event.outcome,
            event.reason,
            event.detail,
        ]);
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical.to_string().as_bytes());
        to_hex(&hasher.finalize())
    }

    #[test]
    fn hashes_match_those_of_chains_written_before() {
        let mut hostile = event(-1_700_000_000_001);
        hostile.tenant = None;
        hostile.actor = "user:\"quoted\"\\back\u{0}\u{1f}\n\u{2028}ü😀".into();
        hostile.reason = "</script>\t{\"json\":[1]}".into();
        hostile.detail = r#"{"ip":"::1","latency_ms":0.5}"#.into();
        for (seq, e) in [
            (1, event(1)),
            (i64::MAX, hostile),
            (-5, event(i64::MIN / 2)),
        ] {
            assert_eq!(
                record_hash(GENESIS, seq, &e),
                hash_as_first_written(GENESIS, seq, &e)
            );
        }
    }

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            tenant: Some(TenantId::new("acme").unwrap()),
            at_ms: 1_700_000_000_000 + n,
            kind: AuditKind::Call,
            actor: "user:ada@acme.com".into(),
            credential: "abc123".into(),
            target: "git/log".into(),
            outcome: "ok".into(),
            reason: String::new(),
            detail: format!(r#"{{"latency_ms":{n}}}"#),
        }
    }

    fn chain(n: i64) -> (Vec<AuditRecord>, ChainHead) {
        let mut head = ChainHead::genesis();
        let records = (1..=n).map(|i| head.append(event(i))).collect();
        (records, head)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (records, head) = chain(5);
        assert_eq!(verify(&records, &head), Ok(5));
        assert_eq!(verify(&[], &ChainHead::genesis()), Ok(0));
        assert_eq!(records[0].prev_hash, GENESIS);
        assert_eq!(records[1].prev_hash, records[0].hash);
    }

    #[test]
    fn an_edit_is_caught() {
        let (mut records, head) = chain(5);
        records[2].event.outcome = "error".into();
        assert_eq!(verify(&records, &head), Err(ChainBreak::Edited { seq: 3 }));
        let (mut records, head) = chain(5);
        records[3].event.detail = r#"{"latency_ms": 4}"#.into();
        assert_eq!(verify(&records, &head), Err(ChainBreak::Edited { seq: 4 }));
    }

    #[test]
    fn a_deletion_is_caught_in_the_middle_and_at_the_end() {
        let (mut records, head) = chain(5);
        records.remove(1);
        assert_eq!(
            verify(&records, &head),
            Err(ChainBreak::Missing {
                expected: 2,
                found: 3
            })
        );
        let (mut records, head) = chain(5);
        records.truncate(3);
        assert_eq!(
            verify(&records, &head),
            Err(ChainBreak::Truncated { last: 3, head: 5 })
        );
    }

    #[test]
    fn reordering_or_renumbering_is_caught() {
        let (mut records, head) = chain(5);
        // Swap two records' contents but keep the numbering.
        let (a, b) = (records[1].event.clone(), records[2].event.clone());
        records[1].event = b;
        records[2].event = a;
        assert!(verify(&records, &head).is_err());
        // Renumber after a deletion so there is no gap: the links break.
        let (mut records, head) = chain(5);
        records.remove(1);
        for (i, r) in records.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        assert!(matches!(
            verify(&records, &head),
            Err(ChainBreak::Unlinked { seq: 2 })
        ));
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn nul_characters_are_replaced_and_nothing_else_changes() {
        let mut e = event(1);
        e.target = "demo/ec\0ho".into();
        e.detail = "{\"a\":\"\0\0\"}".into();
        let untouched = e.reason.clone();
        e.replace_nul();
        assert_eq!(e.target, "demo/ec\u{FFFD}ho");
        assert_eq!(e.detail, "{\"a\":\"\u{FFFD}\u{FFFD}\"}");
        assert_eq!(e.reason, untouched);
        assert!(!format!("{e:?}").contains('\0'));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            AuditKind::AuthRefused,
            AuditKind::Call,
            AuditKind::AdminChange,
        ] {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
