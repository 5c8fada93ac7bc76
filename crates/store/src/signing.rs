//! The gateway's own token signing keys: platform-level, owned by no tenant.

use sqlx::Row;

use crate::tx::{Access, Scope, commit_write};
use crate::{Result, Store, StoreError, now};

/// One signing key of the gateway's issuer.
///
/// The store keeps `private_key` as given: the server seals it under the secrets master key
/// before writing (see `switchboard_secrets::signing`), so the database alone cannot mint
/// tokens.
#[derive(Clone)]
pub struct SigningKeyRow {
    /// Key id (`kid` in token headers and the JWKS).
    pub kid: String,
    /// JWS algorithm (`ES256`, `RS256`, …).
    pub algorithm: String,
    /// The private key as stored (sealed PKCS#8 DER). Never printed: `Debug` redacts it.
    pub private_key: Vec<u8>,
    /// The public half as a JWK (JSON), as published.
    pub public_jwk: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which the key signs no more (it still verifies until tokens
    /// signed with it expire).
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<redacted>")
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl Store {
    /// Adds a signing key of the gateway's issuer (`Conflict` if the kid exists).
    pub async fn add_signing_key(&self, key: &SigningKeyRow) -> Result<()> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(key.private_key.clone())
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .bind(key.retired_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::db(e, "signing key", &key.kid))?;
        commit_write(tx).await
    }

    /// All signing keys, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRow {
                    kid: r.try_get("kid")?,
                    algorithm: r.try_get("algorithm")?,
                    private_key: r.try_get("private_key")?,
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Replaces a key's stored private key (sealing it, or sealing it again under a new
    /// master key). Not a directory change: the revision stays.
    pub async fn reseal_signing_key(&self, kid: &str, private_key: &[u8]) -> Result<()> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let changed = sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
            .bind(private_key.to_vec())
            .bind(kid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "signing key",
                id: kid.to_owned(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Retires a signing key now: it verifies tokens until they expire but signs no more.
    /// Retiring a retired key changes nothing.
    pub async fn retire_signing_key(&self, kid: &str) -> Result<()> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let retired_at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT retired_at FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await?;
        match retired_at {
            None => Err(StoreError::NotFound {
                what: "signing key",
                id: kid.to_owned(),
            }),
            Some(Some(_)) => Ok(()),
            Some(None) => {
                sqlx::query("UPDATE signing_keys SET retired_at = $2 WHERE kid = $1")
                    .bind(kid)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                commit_write(tx).await
            }
        }
    }
}
