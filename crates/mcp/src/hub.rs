//! Where upstream events find their downstream clients.
//!
//! The hub is the only place that knows which downstream clients exist right now: legacy
//! sessions (registered when they finish `initialize`) and modern `subscriptions/listen`
//! streams. Upstream connections report events here — list changes, progress, log messages,
//! resource updates — and the hub forwards each to exactly the clients it belongs to.
//!
//! Progress is routed by the *upstream* progress token: every upstream request gets a fresh
//! token from rmcp, and the hub maps `(connection, token)` back to the calling client's own
//! token and [`ProgressSink`], so progress can't leak to another client even on a shared
//! connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken, ResourceUpdatedNotificationParam};
use rmcp::service::{Peer, RoleServer, SubscriptionSink};
use switchboard_domain::tenancy::TenantId;

/// Which aggregated list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListChanges {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
}

/// A resource subscription's key: the tenant owning the connection (none: the shared one)
/// and the exposed URI.
type Interest = (Option<TenantId>, String);

/// Decides which tenants hear about a change (those that can see a changed upstream).
pub type TenantFilter<'a> = &'a (dyn Fn(&TenantId) -> bool + Sync);

impl ListChanges {
    /// True when at least one list changed.
    pub fn any(&self) -> bool {
        self.tools || self.prompts || self.resources
    }

    /// Adds the lists `other` says changed.
    pub fn add(&mut self, other: ListChanges) {
        self.tools |= other.tools;
        self.prompts |= other.prompts;
        self.resources |= other.resources;
    }
}

/// Clients the hub reaches without a peer: parked legacy sessions, whose service loops are
/// stopped (see `downstream/sessions/parking.rs`).
pub trait Dormant: Send + Sync {
    /// Tells the dormant clients of the tenants `audience` admits which lists changed.
    fn list_changed(&self, changes: ListChanges, audience: TenantFilter<'_>);
}

/// Identifies one downstream client (session or listener) inside the hub.
pub type ClientId = u64;

struct Session {
    peer: Peer<RoleServer>,
    tenant: TenantId,
}

/// Where a downstream request's progress goes.
#[derive(Clone)]
pub enum ProgressSink {
    /// The request's rmcp peer (sessions, and requests rmcp serves).
    Peer(Peer<RoleServer>),
    /// The reply of a request on the direct stateless path, which streams it (see
    /// `downstream/direct/`); bounded, so a slow client slows its own progress only.
    Reply(tokio::sync::mpsc::Sender<ProgressNotificationParam>),
}

impl ProgressSink {
    /// Where progress of the request of `ctx` goes: its direct reply if it has one, else
    /// its peer.
    pub fn of(ctx: &rmcp::service::RequestContext<RoleServer>) -> Self {
        match ctx.extensions.get::<ProgressSink>() {
            Some(sink) => sink.clone(),
            None => Self::Peer(ctx.peer.clone()),
        }
    }

    /// Delivers one progress notification (nothing to do when its client is gone: the
    /// call is being cancelled).
    pub async fn notify(&self, params: ProgressNotificationParam) {
        match self {
            Self::Peer(peer) => {
                if let Err(err) = peer.notify_progress(params).await {
                    tracing::debug!(%err, "could not forward progress");
                }
            }
            Self::Reply(reply) => {
                if reply.send(params).await.is_err() {
                    tracing::debug!("could not forward progress: the reply is gone");
                }
            }
        }
    }
}

struct ProgressRoute {
    sink: ProgressSink,
    token: ProgressToken,
    /// When progress was last handed to this route (see [`Hub::settle_progress`]).
    last: Option<Instant>,
}

/// Registry of downstream clients and the routing tables that point at them.
#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    sessions: Mutex<HashMap<ClientId, Session>>,
    listeners: Mutex<HashMap<ClientId, (SubscriptionSink, TenantId)>>,
    progress: Mutex<HashMap<(u64, ProgressToken), ProgressRoute>>,
    /// exposed resource URI → clients subscribed to it.
    /// Subscribers by (owning tenant of the connection — none for the shared one —, exposed
    /// URI): one tenant's own connection and the shared one are subscribed separately.
    resource_interest: Mutex<HashMap<Interest, HashSet<ClientId>>>,
    /// Session managers holding parked sessions.
    dormant: Mutex<Vec<std::sync::Weak<dyn Dormant>>>,
    /// Progress that arrived before its route was recorded (an upstream can report progress
    /// before `send_request` has returned its token to us). Bounded and short-lived.
    early_progress: Mutex<VecDeque<EarlyProgress>>,
}

struct EarlyProgress {
    key: (u64, ProgressToken),
    params: ProgressNotificationParam,
    at: Instant,
}

/// Most unrouted progress notifications kept, and for how long.
const EARLY_PROGRESS_CAP: usize = 256;
const EARLY_PROGRESS_TTL: Duration = Duration::from_secs(5);
/// After an answer, progress counts as settled once none arrived for this long...
const PROGRESS_QUIET: Duration = Duration::from_millis(3);
/// ...or this long has passed.
const PROGRESS_SETTLE_MAX: Duration = Duration::from_millis(50);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves plain maps behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// A fresh client id.
    pub fn next_client_id(&self) -> ClientId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a legacy session's peer, of `tenant`, so it receives notifications.
    pub fn add_session(&self, id: ClientId, peer: Peer<RoleServer>, tenant: TenantId) {
        lock(&self.sessions).insert(id, Session { peer, tenant });
    }

    /// Registers a session manager whose parked sessions hear of list changes.
    pub fn add_dormant(&self, dormant: std::sync::Weak<dyn Dormant>) {
        let mut all = lock(&self.dormant);
        all.retain(|d| d.strong_count() > 0);
        all.push(dormant);
    }

    /// Registers a modern `subscriptions/listen` stream of `tenant`.
    pub fn add_listener(&self, id: ClientId, sink: SubscriptionSink, tenant: TenantId) {
        lock(&self.listeners).insert(id, (sink, tenant));
    }

    /// Forgets a client and everything routed to it.
    pub fn remove_client(&self, id: ClientId) {
        lock(&self.sessions).remove(&id);
        lock(&self.listeners).remove(&id);
        lock(&self.resource_interest).retain(|_, clients| {
            clients.remove(&id);
            !clients.is_empty()
        });
    }

    /// Number of registered legacy sessions (for health and tests).
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Records that client `id` wants `notifications/resources/updated` for `uri` from the
    /// connection owned by `owner` (none: the shared one). Returns true when it is the first
    /// subscriber, i.e. the upstream must be subscribed.
    pub fn subscribe_resource(&self, id: ClientId, owner: Option<&TenantId>, uri: &str) -> bool {
        let mut interest = lock(&self.resource_interest);
        let clients = interest
            .entry((owner.cloned(), uri.to_owned()))
            .or_default();
        let first = clients.is_empty();
        clients.insert(id);
        first
    }

    /// Drops client `id`'s interest in `uri` (of `owner`'s connection). Returns true when
    /// nobody is left subscribed.
    pub fn unsubscribe_resource(&self, id: ClientId, owner: Option<&TenantId>, uri: &str) -> bool {
        let mut interest = lock(&self.resource_interest);
        let key = (owner.cloned(), uri.to_owned());
        let Some(clients) = interest.get_mut(&key) else {
            return false;
        };
        clients.remove(&id);
        if clients.is_empty() {
            interest.remove(&key);
            true
        } else {
            false
        }
    }

    /// Routes progress of upstream request `(connection, upstream_token)` to `sink` under the
    /// client's own `token`, until [`Hub::unroute_progress`]. Returns progress for it that
    /// arrived before the route existed, for the caller to deliver first.
    pub fn route_progress(
        &self,
        connection: u64,
        upstream_token: ProgressToken,
        sink: ProgressSink,
        token: ProgressToken,
    ) -> Vec<ProgressNotificationParam> {
        let key = (connection, upstream_token);
        lock(&self.progress).insert(
            key.clone(),
            ProgressRoute {
                sink,
                token,
                last: None,
            },
        );
        let mut early = lock(&self.early_progress);
        if early.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        early.retain(|e| {
            if e.key == key {
                found.push(e.params.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// Waits (briefly, bounded) until progress of an upstream request that has just answered
    /// stops arriving. rmcp hands each notification to its own task, so progress the upstream
    /// sent right before its answer can be processed just after it; routing it first keeps
    /// the client's progress complete and in front of the result.
    pub async fn settle_progress(&self, connection: u64, upstream_token: &ProgressToken) {
        let key = (connection, upstream_token.clone());
        let started = Instant::now();
        loop {
            let last = lock(&self.progress).get(&key).and_then(|r| r.last);
            let quiet_since = last.map_or(started, |l| l.max(started));
            if quiet_since.elapsed() >= PROGRESS_QUIET || started.elapsed() >= PROGRESS_SETTLE_MAX {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops routing progress of an upstream request.
    pub fn unroute_progress(&self, connection: u64, upstream_token: &ProgressToken) {
        lock(&self.progress).remove(&(connection, upstream_token.clone()));
    }

    /// Forwards an upstream progress notification to the client whose request it belongs to.
    pub async fn forward_progress(&self, connection: u64, mut params: ProgressNotificationParam) {
        let route = lock(&self.progress)
            .get_mut(&(connection, params.progress_token.clone()))
            .map(|r| {
                r.last = Some(Instant::now());
                (r.sink.clone(), r.token.clone())
            });
        let Some((sink, token)) = route else {
            let mut early = lock(&self.early_progress);
            let now = Instant::now();
            while early
                .front()
                .is_some_and(|e| now.duration_since(e.at) > EARLY_PROGRESS_TTL)
                || early.len() >= EARLY_PROGRESS_CAP
            {
                early.pop_front();
            }
            early.push_back(EarlyProgress {
                key: (connection, params.progress_token.clone()),
                params,
                at: now,
            });
            return;
        };
        params.progress_token = token;
        sink.notify(params).await;
    }

    /// Forwards `notifications/resources/updated` (already carrying the exposed URI) to the
    /// clients subscribed to it — only those of `tenant` when the update came from one
    /// tenant's own connection.
    pub async fn forward_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        tenant: Option<&TenantId>,
    ) {
        let ids: Vec<ClientId> = lock(&self.resource_interest)
            .get(&(tenant.cloned(), params.uri.clone()))
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return;
        }
        let audience = |of: &TenantId| tenant.is_none_or(|t| t == of);
        let peers: Vec<_> = {
            let sessions = lock(&self.sessions);
            ids.iter()
                .filter_map(|id| sessions.get(id))
                .filter(|s| audience(&s.tenant))
                .map(|s| s.peer.clone())
                .collect()
        };
        for peer in peers {
            let _ = peer.notify_resource_updated(params.clone()).await;
        }
        let sinks: Vec<_> = {
            let listeners = lock(&self.listeners);
            ids.iter()
                .filter_map(|id| listeners.get(id))
                .filter(|(_, of)| audience(of))
                .map(|(sink, _)| sink.clone())
                .collect()
        };
        for sink in sinks {
            let _ = sink.notify_resource_updated(params.uri.clone()).await;
        }
    }

    /// Tells the downstream clients of the tenants `audience` admits which aggregated lists
    /// changed; other tenants' clients never learn that anything happened.
    pub async fn broadcast_list_changes(&self, changes: ListChanges, audience: TenantFilter<'_>) {
        if !changes.any() {
            return;
        }
        let peers: Vec<(ClientId, Peer<RoleServer>)> = lock(&self.sessions)
            .iter()
            .filter(|(_, s)| audience(&s.tenant))
            .map(|(id, s)| (*id, s.peer.clone()))
            .collect();
        for (id, peer) in peers {
            let mut failed = false;
            if changes.tools {
                failed |= peer.notify_tool_list_changed().await.is_err();
            }
            if changes.prompts {
                failed |= peer.notify_prompt_list_changed().await.is_err();
            }
            if changes.resources {
                failed |= peer.notify_resource_list_changed().await.is_err();
            }
            if failed && peer.is_transport_closed() {
                self.remove_client(id);
            }
        }
        let dormant: Vec<_> = lock(&self.dormant)
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        for sessions in dormant {
            sessions.list_changed(changes, audience);
        }
        let sinks: Vec<SubscriptionSink> = lock(&self.listeners)
            .values()
            .filter(|(_, tenant)| audience(tenant))
            .map(|(sink, _)| sink.clone())
            .collect();
        for sink in sinks {
            let accepted = sink.accepted().clone();
            if changes.tools && accepted.tools_list_changed == Some(true) {
                let _ = sink.notify_tool_list_changed().await;
            }
            if changes.prompts && accepted.prompts_list_changed == Some(true) {
                let _ = sink.notify_prompt_list_changed().await;
            }
            if changes.resources && accepted.resources_list_changed == Some(true) {
                let _ = sink.notify_resource_list_changed().await;
            }
        }
    }
}
