//! API keys, service clients, trusted issuers and revoked tokens of one tenant, and the
//! gateway's own signing keys.

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::tenancy::{
    ApiKeyRecord, ClientId, IssuerConfig, KeyOwner, ServiceClient, Target, TenantId,
};

use crate::members::{role, user};
use crate::{Result, Store, StoreError, TenantStore, bump, now};

/// One signing key of the gateway's issuer.
#[derive(Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    /// PKCS#8 DER.
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

pub(crate) fn api_key_from_row(row: &AnyRow) -> Result<ApiKeyRecord> {
    let corrupt = |m: String| StoreError::corrupt("api key", m);
    let owner_type: String = row.try_get("owner_type")?;
    let owner_id: String = row.try_get("owner_id")?;
    let owner = match owner_type.as_str() {
        "user" => KeyOwner::User(user(owner_id)?),
        "client" => KeyOwner::Client(ClientId::new(owner_id).map_err(|e| corrupt(e.to_string()))?),
        other => return Err(corrupt(format!("owner type {other:?}"))),
    };
    let restrictions: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("restrictions")?)
            .map_err(|e| corrupt(e.to_string()))?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?)
            .map_err(|e| corrupt(e.to_string()))?,
        name: row.try_get("name")?,
        owner,
        hash: row.try_get("hash")?,
        restrictions: restrictions
            .iter()
            .map(|t| Target::parse(t).map_err(|e| corrupt(e.to_string())))
            .collect::<Result<_>>()?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn client_from_row(row: &AnyRow) -> Result<ServiceClient> {
    let corrupt = |m: String| StoreError::corrupt("service client", m);
    Ok(ServiceClient {
        id: ClientId::new(row.try_get::<String, _>("client_id")?)
            .map_err(|e| corrupt(e.to_string()))?,
        tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?)
            .map_err(|e| corrupt(e.to_string()))?,
        name: row.try_get("name")?,
        role: role(&row.try_get::<String, _>("role")?)?,
        secret_hash: row.try_get("secret_hash")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

pub(crate) fn issuer_from_row(row: &AnyRow) -> Result<IssuerConfig> {
    serde_json::from_str(&row.try_get::<String, _>("config")?)
        .map_err(|e| StoreError::corrupt("issuer", e))
}

impl TenantStore<'_> {
    /// Stores a new API key (its record must belong to this tenant).
    pub async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        if key.tenant != self.tenant {
            return Err(StoreError::Invalid(format!(
                "API key {} belongs to tenant {}, not {}",
                key.id, key.tenant, self.tenant
            )));
        }
        let (owner_type, owner_id) = match &key.owner {
            KeyOwner::User(u) => ("user", u.as_str()),
            KeyOwner::Client(c) => ("client", c.as_str()),
        };
        let restrictions: Vec<String> = key.restrictions.iter().map(|t| t.to_string()).collect();
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, owner_type, owner_id, hash, restrictions, expires_at, revoked_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&key.id)
        .bind(self.id())
        .bind(&key.name)
        .bind(owner_type)
        .bind(owner_id)
        .bind(key.hash.clone())
        .bind(serde_json::to_string(&restrictions).unwrap_or_else(|_| "[]".into()))
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(if key.created_at > 0 { key.created_at } else { now() })
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::db(e, "API key", &key.id))?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes an API key of this tenant.
    pub async fn revoke_api_key(&self, id: &str, at: i64) -> Result<()> {
        let query = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(self.id().to_owned())
        .bind(id.to_owned())
        .bind(at);
        self.change(query, "API key", id).await
    }

    /// The tenant's API keys, newest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let mut tx = self.tx().await?;
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id")
                .bind(self.id())
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        rows.iter().map(api_key_from_row).collect()
    }

    /// Stores a new service client.
    pub async fn create_client(&self, client: &ServiceClient) -> Result<()> {
        if client.tenant != self.tenant {
            return Err(StoreError::Invalid(format!(
                "client {} belongs to tenant {}, not {}",
                client.id, client.tenant, self.tenant
            )));
        }
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO service_clients (tenant_id, client_id, name, role, secret_hash, disabled) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(self.id())
        .bind(client.id.as_str())
        .bind(&client.name)
        .bind(client.role.as_str())
        .bind(client.secret_hash.clone())
        .bind(i64::from(client.disabled))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::db(e, "service client", client.id.as_str()))?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables or re-enables a service client.
    pub async fn set_client_disabled(&self, id: &ClientId, disabled: bool) -> Result<()> {
        let query = sqlx::query(
            "UPDATE service_clients SET disabled = $3 WHERE tenant_id = $1 AND client_id = $2",
        )
        .bind(self.id().to_owned())
        .bind(id.as_str().to_owned())
        .bind(i64::from(disabled));
        self.change(query, "service client", id.as_str()).await
    }

    /// The tenant's service clients.
    pub async fn clients(&self) -> Result<Vec<ServiceClient>> {
        let mut tx = self.tx().await?;
        let rows =
            sqlx::query("SELECT * FROM service_clients WHERE tenant_id = $1 ORDER BY client_id")
                .bind(self.id())
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Trusts an issuer (or replaces its configuration).
    pub async fn put_issuer(&self, issuer: &IssuerConfig) -> Result<()> {
        if issuer.tenant != self.tenant {
            return Err(StoreError::Invalid(format!(
                "issuer configuration names tenant {}, not {}",
                issuer.tenant, self.tenant
            )));
        }
        let config =
            serde_json::to_string(issuer).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO issuers (tenant_id, issuer, config) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, issuer) DO UPDATE SET config = excluded.config",
        )
        .bind(self.id())
        .bind(&issuer.issuer)
        .bind(config)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stops trusting an issuer.
    pub async fn remove_issuer(&self, issuer: &str) -> Result<()> {
        let query = sqlx::query("DELETE FROM issuers WHERE tenant_id = $1 AND issuer = $2")
            .bind(self.id().to_owned())
            .bind(issuer.to_owned());
        self.change(query, "issuer", issuer).await
    }

    /// The issuers the tenant trusts.
    pub async fn issuers(&self) -> Result<Vec<IssuerConfig>> {
        let mut tx = self.tx().await?;
        let rows = sqlx::query("SELECT config FROM issuers WHERE tenant_id = $1 ORDER BY issuer")
            .bind(self.id())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(issuer_from_row).collect()
    }

    /// Revokes a token this gateway issued (kept until it would have expired).
    pub async fn revoke_token(&self, jti: &str, expires_at: i64) -> Result<()> {
        let mut tx = self.tx().await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (tenant_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, jti) DO NOTHING",
        )
        .bind(self.id())
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        // Expired revocations are useless: the token is refused anyway.
        sqlx::query("DELETE FROM revoked_tokens WHERE tenant_id = $1 AND expires_at < $2")
            .bind(self.id())
            .bind(now() - 3600)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Adds a signing key of the gateway's issuer.
    pub async fn add_signing_key(&self, key: &SigningKeyRow) -> Result<()> {
        let mut tx = self.platform_tx().await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// All signing keys, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?;
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

    /// Retires a signing key: it verifies tokens until they expire but signs no more.
    pub async fn retire_signing_key(&self, kid: &str) -> Result<()> {
        let mut tx = self.platform_tx().await?;
        let n = sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL",
        )
        .bind(kid)
        .bind(now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "signing key",
                id: kid.to_owned(),
            });
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
