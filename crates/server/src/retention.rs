//! Audit retention: each chain keeps its records for the tenant's `auditRetentionDays`, else
//! `audit.retention_days` (0 keeps them forever). Older records are removed by the store
//! with the chain's anchor moved in the same transaction, so `audit verify` still checks
//! everything that is left; each removal is itself recorded in the chain.

use std::sync::Arc;
use std::time::Duration;

use switchboard_domain::audit::{AuditEvent, AuditKind, PLATFORM_CHAIN};
use switchboard_domain::tenancy::TenantId;
use switchboard_governance::AuditLog;
use tokio_util::sync::CancellationToken;

use crate::tenancy::Tenancy;

/// How often chains are checked for records past their retention.
const EVERY: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 86_400_000;

/// The oldest time a record of a chain may carry, or `None` to keep everything.
pub fn cutoff_ms(now_ms: i64, tenant_days: Option<u32>, default_days: u32) -> Option<i64> {
    match tenant_days.unwrap_or(default_days) {
        0 => None,
        days => Some(now_ms - i64::from(days) * DAY_MS),
    }
}

/// Applies retention to every chain as of `now_ms`; returns how many records went.
pub async fn prune_all(
    tenancy: &Tenancy,
    audit: &AuditLog,
    default_days: u32,
    now_ms: i64,
) -> anyhow::Result<u64> {
    let snapshot = tenancy.auth.snapshot();
    let mut removed = 0;
    for chain in tenancy.store.audit_chains().await? {
        let tenant = (chain != PLATFORM_CHAIN)
            .then(|| TenantId::new(&chain).ok())
            .flatten();
        let tenant_days = tenant
            .as_ref()
            .and_then(|t| snapshot.tenant(t))
            .and_then(|entry| entry.tenant.settings.audit_retention_days);
        let Some(before) = cutoff_ms(now_ms, tenant_days, default_days) else {
            continue;
        };
        let Some((anchor, records)) = tenancy.store.prune_audit(&chain, before).await? else {
            continue;
        };
        removed += records;
        let days = tenant_days.unwrap_or(default_days);
        tracing::info!(%chain, records, through = anchor.seq, days, "audit retention removed old records");
        audit.record(AuditEvent {
            tenant,
            at_ms: now_ms,
            kind: AuditKind::AdminChange,
            actor: "system:retention".into(),
            credential: String::new(),
            target: "audit".into(),
            outcome: "ok".into(),
            reason: format!("records older than {days} days"),
            detail: serde_json::json!({
                "action": "audit.prune",
                "removedThrough": anchor.seq,
                "records": records,
                "retentionDays": days,
            })
            .to_string(),
        });
    }
    Ok(removed)
}

/// Runs retention now and then every hour until `stop`.
pub fn spawn(
    tenancy: Arc<Tenancy>,
    audit: Arc<AuditLog>,
    default_days: u32,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            if let Err(err) = prune_all(&tenancy, &audit, default_days, now_ms).await {
                tracing::warn!(error = %err, "audit retention could not run; retrying in an hour");
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenants_setting_wins_and_zero_keeps_everything() {
        let now = 100 * DAY_MS;
        assert_eq!(cutoff_ms(now, None, 0), None);
        assert_eq!(cutoff_ms(now, None, 30), Some(70 * DAY_MS));
        assert_eq!(cutoff_ms(now, Some(10), 30), Some(90 * DAY_MS));
        assert_eq!(
            cutoff_ms(now, Some(0), 30),
            None,
            "a tenant may keep everything"
        );
    }
}
