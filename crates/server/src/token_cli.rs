//! `switchboard token issue|inspect|revoke`: user tokens signed by this gateway's own
//! issuer, for clients that take a bearer token (seed 003's token CLI). It works on the
//! gateway's database directly, so run it where the gateway's configuration is.

use std::time::Duration;

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use switchboard_auth::issuer::now;
use switchboard_domain::tenancy::{Identity, TenantId, UserId};

use crate::config::Config;
use crate::tenancy::{load_issuer, open_store};

/// Parses `90s`, `15m`, `12h`, `30d` or plain seconds.
pub fn parse_ttl(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("--ttl {text:?}: write e.g. 3600, 15m, 12h or 30d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--ttl {text:?}: the unit must be s, m, h or d"),
    };
    if !(60..=366 * 86_400).contains(&secs) {
        bail!("--ttl {text:?}: must be between 1 minute and 366 days");
    }
    Ok(Duration::from_secs(secs))
}

/// Issues a token for `user` in `tenant` and prints it on stdout.
pub async fn issue(config: &Config, tenant: &str, user: &str, ttl: Duration) -> anyhow::Result<()> {
    let tenant = TenantId::new(tenant).context("--tenant")?;
    let user = UserId::new(user).context("--user")?;
    let store = open_store(config).await?;
    if store.get_tenant(&tenant).await?.is_none() {
        bail!("tenant {tenant:?} does not exist");
    }
    let members = store.tenant(&tenant).members().await?;
    if !members.iter().any(|m| m.user == user) {
        eprintln!(
            "warning: {user} is not a member of {tenant}; the token will be refused until they are"
        );
    }
    let keyring = crate::secrets::keyring(config)?;
    let issuer = load_issuer(&store, &keyring, &config.public_url()).await?;
    let issued = issuer
        .issue(
            &tenant,
            &Identity::User(user),
            &config.public_url(),
            ttl.as_secs() as i64,
            "",
        )
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "token id {} for tenant {tenant}, valid until unix time {}",
        issued.jti, issued.expires_at
    );
    println!("{}", issued.token);
    Ok(())
}

/// Verifies a token of this gateway and returns its claims (expiry not enforced, so an
/// expired token can still be inspected).
async fn verified_claims(config: &Config, token: &str) -> anyhow::Result<Map<String, Value>> {
    let store = open_store(config).await?;
    let keyring = crate::secrets::keyring(config)?;
    let issuer = load_issuer(&store, &keyring, &config.public_url()).await?;
    let header = jsonwebtoken::decode_header(token).context("not a JWT")?;
    let key = issuer
        .keys()
        .get(header.kid.as_deref())
        .context("the token was not signed by this gateway's keys")?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer.issuer()]);
    validation.set_required_spec_claims(&["iss"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .context("the token does not verify against this gateway's keys")?;
    Ok(data.claims)
}

/// Prints a token's verified claims and whether it is usable now.
pub async fn inspect(config: &Config, token: &str) -> anyhow::Result<()> {
    let claims = verified_claims(config, token).await?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let store = open_store(config).await?;
    let directory = store.load_directory().await?;
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    let revoked = directory
        .tenants
        .iter()
        .any(|t| t.revoked_tokens.iter().any(|r| r == jti));
    let status = if revoked {
        "revoked"
    } else if exp <= now() {
        "expired"
    } else {
        "valid"
    };
    let out = serde_json::json!({"status": status, "claims": claims});
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Revokes a token of this gateway (effective at every replica's next reload).
pub async fn revoke(config: &Config, token: &str) -> anyhow::Result<()> {
    let claims = verified_claims(config, token).await?;
    let tenant = claims
        .get("tenant")
        .and_then(Value::as_str)
        .context("the token names no tenant")?;
    let tenant = TenantId::new(tenant)?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .context("the token has no id (jti)")?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now());
    let store = open_store(config).await?;
    store.tenant(&tenant).revoke_token(jti, exp).await?;
    eprintln!("revoked token {jti} of tenant {tenant}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_ttl("3600").unwrap().as_secs(), 3600);
        assert_eq!(parse_ttl("30d").unwrap().as_secs(), 30 * 86_400);
        assert!(parse_ttl("5s").is_err());
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("").is_err());
    }
}
