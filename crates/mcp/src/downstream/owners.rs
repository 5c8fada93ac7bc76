//! Who opened each legacy Streamable HTTP session, with running counts per user and per
//! tenant, so the session limits are checked in constant time however many sessions are
//! open.
//!
//! The transports tell this map when a session ends (Streamable HTTP: the session manager,
//! however the session ends; SSE: the stream's guard), and record an owner only for a
//! session still open, so the counts are exact.

use std::collections::HashMap;

use switchboard_domain::tenancy::{Identity, SessionOwner, TenantId};

use crate::caller::Caller;

/// The session limits of one caller, the same for every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Per user (the tenant's `maxSessionsPerUser`, else the gateway's); none for the
    /// anonymous caller of a gateway without tenants, where only the gateway's limit applies.
    pub per_user: Option<usize>,
    /// The tenant's `maxSessions`.
    pub per_tenant: Option<usize>,
}

impl Caps {
    /// The limits of `caller`, with `default_per_user` when its tenant sets none.
    pub fn of(caller: &Caller, owner: &SessionOwner, default_per_user: usize) -> Self {
        Self {
            per_user: (owner.identity != Identity::Anonymous).then(|| {
                caller
                    .max_sessions_per_user
                    .map_or(default_per_user, |n| n as usize)
            }),
            per_tenant: caller.max_sessions.map(|n| n as usize),
        }
    }

    /// Why `owner`, holding `held` sessions (its own, its tenant's), may not open another;
    /// `what` names them in the message ("sessions", "SSE sessions").
    pub fn refusal(
        &self,
        owner: &SessionOwner,
        (mine, tenant): (usize, usize),
        what: &str,
    ) -> Option<String> {
        if self.per_user.is_some_and(|cap| mine >= cap) {
            return Some(format!(
                "{} already holds {mine} {what}, the most allowed per user (maxSessionsPerUser)",
                owner.identity
            ));
        }
        if self.per_tenant.is_some_and(|cap| tenant >= cap) {
            return Some(format!(
                "tenant {} already holds {tenant} {what}, its limit (maxSessions)",
                owner.tenant
            ));
        }
        None
    }
}

/// Session id → owner and opening time, with counts kept in step.
#[derive(Debug, Default)]
pub struct Owners {
    by_id: HashMap<String, (SessionOwner, i64)>,
    per_owner: HashMap<SessionOwner, usize>,
    per_tenant: HashMap<TenantId, usize>,
    /// Places held by sessions being opened (counted in `per_owner` and `per_tenant`).
    pending: usize,
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

impl Owners {
    /// Records that `owner` opened session `id` at `opened_at` (Unix seconds).
    pub fn insert(&mut self, id: String, owner: SessionOwner, opened_at: i64) {
        self.remove(&id);
        *self.per_tenant.entry(owner.tenant.clone()).or_default() += 1;
        *self.per_owner.entry(owner.clone()).or_default() += 1;
        self.by_id.insert(id, (owner, opened_at));
    }

    /// Forgets session `id`; returns its owner and opening time.
    pub fn remove(&mut self, id: &str) -> Option<(SessionOwner, i64)> {
        let (owner, opened_at) = self.by_id.remove(id)?;
        decrement(&mut self.per_owner, &owner);
        decrement(&mut self.per_tenant, &owner.tenant);
        Some((owner, opened_at))
    }

    /// Holds a place for `owner` while its session is being opened: counted at once, so
    /// concurrent opens cannot pass a limit together. [`Owners::release`] gives it back;
    /// [`Owners::insert`] after it records the session.
    pub fn reserve(&mut self, owner: &SessionOwner) {
        *self.per_tenant.entry(owner.tenant.clone()).or_default() += 1;
        *self.per_owner.entry(owner.clone()).or_default() += 1;
        self.pending += 1;
    }

    /// Gives back a place held by [`Owners::reserve`].
    pub fn release(&mut self, owner: &SessionOwner) {
        decrement(&mut self.per_owner, owner);
        decrement(&mut self.per_tenant, &owner.tenant);
        self.pending = self.pending.saturating_sub(1);
    }

    /// Sessions being opened.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The owner of session `id`.
    pub fn get(&self, id: &str) -> Option<&(SessionOwner, i64)> {
        self.by_id.get(id)
    }

    /// Sessions held by `owner`, and by its tenant.
    pub fn held_by(&self, owner: &SessionOwner) -> (usize, usize) {
        (
            self.per_owner.get(owner).copied().unwrap_or(0),
            self.per_tenant.get(&owner.tenant).copied().unwrap_or(0),
        )
    }

    /// Every recorded session.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &(SessionOwner, i64))> {
        self.by_id.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_domain::tenancy::{Identity, UserId};

    fn owner(tenant: &str, user: &str) -> SessionOwner {
        SessionOwner {
            tenant: TenantId::new(tenant).unwrap(),
            identity: Identity::User(UserId::new(user).unwrap()),
        }
    }

    #[test]
    fn caps_refuse_at_the_user_then_the_tenant_limit() {
        let ada = owner("acme", "ada@acme.com");
        let caps = Caps {
            per_user: Some(2),
            per_tenant: Some(3),
        };
        assert_eq!(caps.refusal(&ada, (1, 2), "sessions"), None);
        let user = caps.refusal(&ada, (2, 2), "SSE sessions").unwrap();
        assert!(user.contains("2 SSE sessions") && user.contains("(maxSessionsPerUser)"));
        let tenant = caps.refusal(&ada, (1, 3), "sessions").unwrap();
        assert!(tenant.starts_with("tenant acme") && tenant.contains("(maxSessions)"));
        let open = Caps {
            per_user: None,
            per_tenant: None,
        };
        assert_eq!(open.refusal(&ada, (99, 99), "sessions"), None);
    }

    #[test]
    fn counts_follow_inserts_and_removals() {
        let ada = owner("acme", "ada@acme.com");
        let bob = owner("acme", "bob@acme.com");
        let gus = owner("globex", "gus@globex.com");
        let mut owners = Owners::default();
        owners.insert("s1".into(), ada.clone(), 1);
        owners.insert("s2".into(), ada.clone(), 2);
        owners.insert("s3".into(), bob.clone(), 3);
        owners.insert("s4".into(), gus.clone(), 4);
        assert_eq!(owners.held_by(&ada), (2, 3));
        assert_eq!(owners.held_by(&gus), (1, 1));
        // Recording one id twice counts it once.
        owners.insert("s3".into(), bob.clone(), 5);
        assert_eq!(owners.held_by(&bob), (1, 3));
        assert_eq!(owners.remove("s1").map(|(o, _)| o), Some(ada.clone()));
        assert_eq!(owners.remove("s1"), None);
        assert_eq!(owners.held_by(&ada), (1, 2));
        owners.remove("s2");
        owners.remove("s4");
        assert_eq!(owners.held_by(&ada), (0, 1));
        assert_eq!(owners.held_by(&gus), (0, 0));
        assert_eq!(owners.iter().count(), 1);
        assert!(owners.per_owner.len() == 1 && owners.per_tenant.len() == 1);
    }

    #[test]
    fn a_reserved_place_counts_until_released() {
        let ada = owner("acme", "ada@acme.com");
        let mut owners = Owners::default();
        owners.reserve(&ada);
        owners.reserve(&ada);
        assert_eq!((owners.held_by(&ada), owners.pending()), ((2, 2), 2));
        owners.release(&ada);
        owners.insert("s1".into(), ada.clone(), 1);
        owners.release(&ada);
        assert_eq!((owners.held_by(&ada), owners.pending()), ((1, 1), 0));
        owners.remove("s1");
        assert!(owners.per_owner.is_empty() && owners.per_tenant.is_empty());
    }
}
