//! Secrets at rest: envelope encryption.
//!
//! - `envelope` — AES-256-GCM (ring) with associated data binding every ciphertext to its
//!   place: a data key to its tenant, a secret to its tenant, owner and name;
//! - `keyring` — the master keys: the primary wraps, previous ones only unwrap (rotation
//!   with no downtime);
//! - `vault` — the service: a data key per tenant (created on first use, wrapped by the
//!   master key, cached unwrapped in memory — checked against the stored wrapping on each use —
//!   and wiped on drop), secrets of a tenant or of
//!   one of its users, `resolve` (the user's, else the tenant's), and `rotate`;
//! - `signing` — the gateway's own token signing keys, sealed under the master key.
//!
//! A KMS or Vault backend slots in behind the keyring: only wrapping and unwrapping data
//! keys touches the master key.
//!
//! *Must not:* log or return a secret's value except to its caller inside the gateway;
//! know HTTP or MCP.

pub mod envelope;
pub mod keyring;
pub mod signing;
pub mod vault;

pub use envelope::{EnvelopeError, Key};
pub use keyring::{Keyring, parse_master_key};
pub use vault::{MAX_VALUE, Resolution, ResolveError, Rotation, Vault, VaultError, check_name};
