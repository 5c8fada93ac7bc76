//! Tenants: organisations with a status, a plan, domains and settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::TenantId;
use crate::limits::RateLimits;

/// Whether a tenant may use the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    /// Refused on every request with a message saying so.
    Suspended,
    /// Works like `active`; plans and quotas may differ.
    Trial,
}

impl TenantStatus {
    /// The stored/serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Trial => "trial",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "trial" => Some(Self::Trial),
            _ => None,
        }
    }
}

/// A tenant's commercial plan; plan defaults for limits come with governance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

impl Plan {
    /// The stored/serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "free" => Some(Self::Free),
            "pro" => Some(Self::Pro),
            "enterprise" => Some(Self::Enterprise),
            _ => None,
        }
    }
}

/// Per-tenant settings, stored as one JSON document. Unknown keys are refused so a typo is
/// an error, not a silently ignored setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantSettings {
    /// Most concurrent legacy sessions one user (or credential) may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions_per_user: Option<u32>,
    /// Most concurrent legacy sessions of the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Feature switches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, bool>,
    /// Client address ranges (CIDR) allowed to call; empty allows all. Enforced with
    /// governance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allowlist: Vec<String>,
    /// Rate limits over the plan's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    /// Persisted call quotas (accepted and stored; enforced once quotas land).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// Days the tenant's audit records are kept (over `audit.retention_days`); 0 keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<u32>,
}

/// Call quotas of a tenant: calls per calendar day and month, counted durably.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Quotas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_month: Option<u64>,
}

/// An organisation using the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub status: TenantStatus,
    pub plan: Plan,
    /// Host names that resolve to this tenant (`acme.mcp.example.com`), lowercase.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub settings: TenantSettings,
}

impl Tenant {
    /// A new active tenant on the free plan.
    pub fn new(id: TenantId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            status: TenantStatus::Active,
            plan: Plan::Free,
            domains: Vec::new(),
            settings: TenantSettings::default(),
        }
    }

    /// Whether requests of this tenant are served.
    pub fn is_usable(&self) -> bool {
        self.status != TenantStatus::Suspended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_unknown_keys() {
        let ok: TenantSettings =
            serde_json::from_str(r#"{"maxSessionsPerUser": 3, "features": {"beta": true}}"#)
                .unwrap();
        assert_eq!(ok.max_sessions_per_user, Some(3));
        let err = serde_json::from_str::<TenantSettings>(r#"{"maxSessionPerUser": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("maxSessionPerUser"), "{err}");
    }

    #[test]
    fn status_and_plan_round_trip() {
        for s in [
            TenantStatus::Active,
            TenantStatus::Suspended,
            TenantStatus::Trial,
        ] {
            assert_eq!(TenantStatus::parse(s.as_str()), Some(s));
        }
        for p in [Plan::Free, Plan::Pro, Plan::Enterprise] {
            assert_eq!(Plan::parse(p.as_str()), Some(p));
        }
        assert!(
            !Tenant {
                status: TenantStatus::Suspended,
                ..Tenant::new(TenantId::new("a").unwrap(), "A")
            }
            .is_usable()
        );
    }
}
