//! Authentication for Switchboard: from the credential of one request to the principal of
//! exactly one tenant, with no database round trip on the request path.
//!
//! - `api_key` — `sb_<id>_<secret>` keys, stored as keyed hashes, compared in constant time;
//! - `keys`, `jwks`, `jwt` — bearer JWTs from per-tenant trusted issuers (static keys or a
//!   cached, rotating JWKS), with `alg` pinned by the key;
//! - `issuer` — the gateway's own ES256 issuer (client-credentials and user tokens);
//! - `snapshot` — the compiled directory the hot path reads;
//! - `authenticate` — tenant resolution and the checks, in order;
//! - `events` — where refusals (and cross-tenant attempts) are reported.
//!
//! *Must not:* touch the database or HTTP routing; the server wires the store's directory
//! into snapshots and maps `AuthError` onto responses.

pub mod api_key;
pub mod authenticate;
pub mod error;
pub mod events;
pub mod issuer;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod snapshot;

pub use authenticate::{AuthOptions, Authenticated, Authenticator, RequestFacts, open_principal};
pub use error::AuthError;
pub use events::{AuthEventSink, LogAuthEvents, Refusal};
pub use issuer::{GatewayIssuer, IssuedToken, SigningKeyMaterial, generate_signing_key};
pub use jwks::{JwksCache, JwksOptions};
pub use snapshot::{Snapshot, TenantEntry};
