//! Audit events of the admin API: every change (before and after, as the API shows them —
//! views never hold a secret), and refused platform credentials.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};
use switchboard_domain::audit::{AuditEvent, AuditKind};
use switchboard_domain::tenancy::TenantId;

use crate::AdminState;
use crate::access::Admin;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A view as audit detail (views serialize infallibly; `null` otherwise).
pub fn snapshot<T: Serialize>(view: &T) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// One change about to be reported.
pub struct Change<'a> {
    pub tenant: &'a TenantId,
    /// `tenant.update`, `member.add`, `api_key.revoke`…
    pub action: &'static str,
    /// The object: `tenant acme`, `member ada@acme.com`…
    pub target: String,
    pub before: Value,
    pub after: Value,
}

impl AdminState {
    /// Records a change in its tenant's audit chain and republishes the directory, so the
    /// change is in force when the caller gets the answer.
    pub(crate) async fn changed(&self, admin: &Admin, change: Change<'_>) {
        let detail = json!({
            "before": change.before,
            "after": change.after,
            "clientIp": admin.ip.map(|ip| ip.to_string()),
        });
        self.0.hooks.record(AuditEvent {
            tenant: Some(change.tenant.clone()),
            at_ms: now_ms(),
            kind: AuditKind::AdminChange,
            actor: admin.actor(),
            credential: admin.credential(),
            target: change.target,
            outcome: "ok".to_owned(),
            reason: change.action.to_owned(),
            detail: detail.to_string(),
        });
        self.0.hooks.directory_changed().await;
    }
}

/// A refused platform admin credential (the platform chain).
pub fn refusal(reason: &str, ip: Option<IpAddr>) -> AuditEvent {
    AuditEvent {
        tenant: None,
        at_ms: now_ms(),
        kind: AuditKind::AuthRefused,
        actor: String::new(),
        credential: String::new(),
        target: "/admin/v1".to_owned(),
        outcome: "refused".to_owned(),
        reason: reason.to_owned(),
        detail: json!({ "clientIp": ip.map(|ip| ip.to_string()) }).to_string(),
    }
}
