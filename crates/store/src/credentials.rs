//! API keys, service clients, trusted issuers and revoked tokens of one tenant.

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::tenancy::{
    ApiKeyRecord, ClientId, IssuerConfig, KeyOwner, ServiceClient, Target, TenantId,
};

use crate::members::{role, user};
use crate::tx::commit_write;
use crate::{Result, StoreError, TenantStore, now};

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
        quotas: row
            .try_get::<Option<String>, _>("quotas")?
            .map(|q| serde_json::from_str(&q).map_err(|e| corrupt(format!("quotas: {e}"))))
            .transpose()?,
        ip_allowlist: row
            .try_get::<Option<String>, _>("ip_allowlist")?
            .map(|l| serde_json::from_str(&l).map_err(|e| corrupt(format!("ip_allowlist: {e}"))))
            .transpose()?
            .unwrap_or_default(),
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
        // Never fall back to "[]": an empty list would lift every restriction.
        let restrictions =
            serde_json::to_string(&restrictions).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let quotas = key
            .quotas
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let allowlist = (!key.ip_allowlist.is_empty())
            .then(|| serde_json::to_string(&key.ip_allowlist))
            .transpose()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, owner_type, owner_id, hash, restrictions, expires_at, revoked_at, created_at, quotas, ip_allowlist) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&key.id)
        .bind(self.id())
        .bind(&key.name)
        .bind(owner_type)
        .bind(owner_id)
        .bind(key.hash.clone())
        .bind(restrictions)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(if key.created_at > 0 { key.created_at } else { now() })
        .bind(quotas)
        .bind(allowlist)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "API key", &key.id))?;
        commit_write(tx).await
    }

    /// Revokes an API key of this tenant at `at`. Revoking a revoked key changes nothing
    /// (the first revocation time stands); another tenant's key is `NotFound`.
    pub async fn revoke_api_key(&self, id: &str, at: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let revoked_at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM api_keys WHERE tenant_id = $1 AND id = $2")
                .bind(self.id())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match revoked_at {
            None => Err(StoreError::NotFound {
                what: "API key",
                id: id.to_owned(),
            }),
            Some(Some(_)) => Ok(()),
            Some(None) => {
                sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(self.id())
                    .bind(id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                commit_write(tx).await
            }
        }
    }

    /// The tenant's API keys, newest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.rows("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id")
            .await?
            .iter()
            .map(api_key_from_row)
            .collect()
    }

    /// Stores a new service client.
    pub async fn create_client(&self, client: &ServiceClient) -> Result<()> {
        if client.tenant != self.tenant {
            return Err(StoreError::Invalid(format!(
                "client {} belongs to tenant {}, not {}",
                client.id, client.tenant, self.tenant
            )));
        }
        let mut tx = self.write().await?;
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
        .map_err(|e| self.write_error(e, "service client", client.id.as_str()))?;
        commit_write(tx).await
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
        self.rows("SELECT * FROM service_clients WHERE tenant_id = $1 ORDER BY client_id")
            .await?
            .iter()
            .map(client_from_row)
            .collect()
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
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO issuers (tenant_id, issuer, config) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, issuer) DO UPDATE SET config = excluded.config",
        )
        .bind(self.id())
        .bind(&issuer.issuer)
        .bind(config)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "issuer", &issuer.issuer))?;
        commit_write(tx).await
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
        self.rows("SELECT config FROM issuers WHERE tenant_id = $1 ORDER BY issuer")
            .await?
            .iter()
            .map(issuer_from_row)
            .collect()
    }

    /// Revokes a token this gateway issued (kept until it would have expired).
    pub async fn revoke_token(&self, jti: &str, expires_at: i64) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (tenant_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, jti) DO NOTHING",
        )
        .bind(self.id())
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "revoked token", jti))?;
        // Expired revocations are useless: the token is refused anyway.
        sqlx::query("DELETE FROM revoked_tokens WHERE tenant_id = $1 AND expires_at < $2")
            .bind(self.id())
            .bind(now() - 3600)
            .execute(&mut *tx)
            .await?;
        commit_write(tx).await
    }
}
