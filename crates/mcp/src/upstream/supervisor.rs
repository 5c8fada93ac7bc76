//! The task that keeps one upstream connected.
//!
//! Loop: connect → fetch lists → publish `Ready` → wait for the connection to close, a
//! `list_changed`, the list TTL, the idle timeout or shutdown → clean up → back off → again.
//! Nothing here runs on a request's path: requests only read what this task publishes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmcp::model::{
    ClientRequest, DiscoverRequest, DiscoverRequestParams, PingRequest, ProtocolVersion,
    ServerCapabilities, ServerNotification, SubscriptionFilter,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient};
use switchboard_domain::UpstreamDef;

use super::client::SharedClient;
use super::connect::{self, Connection};
use super::lists::{self, Lists, Wanted};
use super::{Health, Live, NEXT_CONNECTION, Upstream, UpstreamStatus};

/// How long a stopping stdio child gets between SIGTERM and SIGKILL.
/// Longest wait for a ping answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const CHILD_GRACE: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection up this long resets the back-off.
const STABLE_AFTER: Duration = Duration::from_secs(30);

enum Ended {
    /// The connection closed or failed; reconnect after back-off.
    Closed(String),
    /// Stopped because idle; reconnect on demand.
    Idle,
    /// The gateway is shutting down.
    Shutdown,
}

impl Upstream {
    /// Asks the supervisor to re-fetch some lists (called on `list_changed`).
    pub(super) fn request_refresh(&self, wanted: Wanted) {
        let bits = u8::from(wanted.tools)
            | (u8::from(wanted.prompts) << 1)
            | (u8::from(wanted.resources) << 2);
        self.pending_refresh.fetch_or(bits, Ordering::AcqRel);
        self.refresh.notify_one();
    }

    fn take_refresh(&self) -> Wanted {
        let bits = self.pending_refresh.swap(0, Ordering::AcqRel);
        Wanted {
            tools: bits & 1 != 0,
            prompts: bits & 2 != 0,
            resources: bits & 4 != 0,
        }
    }

    /// Records list changes the upstream announced, so clients hear about them even if the
    /// re-fetched content is equal (`list_changed` means "may have changed").
    fn announce(&self, wanted: Wanted) {
        let bits = u8::from(wanted.tools)
            | (u8::from(wanted.prompts) << 1)
            | (u8::from(wanted.resources) << 2);
        self.announce.fetch_or(bits, Ordering::AcqRel);
    }

    fn publish(&self, update: impl FnOnce(&mut UpstreamStatus)) {
        let mut next = UpstreamStatus::clone(&self.status.load());
        update(&mut next);
        self.promoted_headers.store(
            super::direct::any_promotes_headers(&next.lists.tools),
            Ordering::Relaxed,
        );
        self.status.store(Arc::new(next));
        self.catalog_dirty.notify_one();
    }

    fn set_health(&self, health: Health) {
        let health = match health {
            Health::Down { reason } => Health::Down {
                reason: self.redact(reason),
            },
            other => other,
        };
        if self.status.load().health != health {
            match &health {
                Health::Down { reason } => {
                    tracing::warn!(server = self.name(), %reason, "upstream down")
                }
                other => tracing::info!(server = self.name(), state = ?other, "upstream state"),
            }
            self.publish(|s| s.health = health);
        }
    }
}

/// Runs until the gateway shuts down.
pub(super) async fn run(upstream: Arc<Upstream>) {
    let http = match super::network::http_client(&upstream.def) {
        Ok(http) => http,
        Err(reason) => {
            upstream.set_health(Health::Down { reason });
            return;
        }
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        if upstream.shutdown.is_cancelled() {
            break;
        }
        let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let handler = SharedClient {
            upstream: Arc::downgrade(&upstream),
            connection,
            server: upstream.name().to_owned(),
        };
        let open = async {
            super::network::check_host(&upstream.def).await?;
            connect::open(&upstream.def, handler, &http, connect::Lifecycle::Newest).await
        };
        let opened = tokio::select! {
            opened = tokio::time::timeout(upstream.def.timeouts.connect, open) => opened,
            _ = upstream.shutdown.cancelled() => break,
        };
        let ended = match opened {
            Ok(Ok(conn)) => {
                let since = tokio::time::Instant::now();
                let ended = serve(&upstream, conn, connection).await;
                // A connection that held for a while earns a fresh back-off; one that keeps
                // dying right away (a crash loop) keeps backing off.
                if since.elapsed() >= STABLE_AFTER {
                    backoff = MIN_BACKOFF;
                }
                ended
            }
            Ok(Err(reason)) => Ended::Closed(reason),
            Err(_) => Ended::Closed(format!(
                "no handshake within {:?}",
                upstream.def.timeouts.connect
            )),
        };
        match ended {
            Ended::Shutdown => break,
            Ended::Idle => {
                backoff = MIN_BACKOFF;
                upstream.set_health(Health::Idle);
                tokio::select! {
                    _ = upstream.wake.notified() => continue,
                    _ = upstream.shutdown.cancelled() => break,
                }
            }
            Ended::Closed(reason) => {
                upstream.set_health(Health::Down { reason });
                // Wake waiting requests so they fail now instead of at their timeout.
                upstream.connected.send_modify(|n| *n += 1);
                tokio::select! {
                    _ = tokio::time::sleep(jitter(backoff)) => {}
                    _ = upstream.shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    upstream.live.store(None);
    upstream.set_health(Health::Stopped);
    upstream.connected.send_modify(|n| *n += 1);
}

/// Up to 20 % jitter so many gateways don't reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 200) / 1000.0)
}

async fn fetch_lists(
    upstream: &Upstream,
    conn: &Connection<SharedClient>,
    wanted: Wanted,
    previous: &Lists,
) -> Result<Lists, String> {
    let peer = conn.running.peer();
    let caps = peer.peer_info().map(|info| info.capabilities.clone());
    let timeout = upstream.def.timeouts.request;
    match tokio::time::timeout(timeout, lists::fetch(peer, caps.as_ref(), wanted, previous)).await {
        Ok(Ok(lists)) => Ok(lists),
        Ok(Err(e)) => Err(format!("listing failed: {e}")),
        Err(_) => Err(format!("listing took longer than {timeout:?}")),
    }
}

/// Serves one open connection until it ends.
async fn serve(upstream: &Arc<Upstream>, conn: Connection<SharedClient>, connection: u64) -> Ended {
    let previous = upstream.status.load().lists.clone();
    let first = fetch_lists(upstream, &conn, Wanted::ALL, &previous).await;
    let lists = match first {
        Ok(lists) => lists,
        Err(reason) => {
            close(conn).await;
            return Ended::Closed(reason);
        }
    };
    let info = conn.running.peer().peer_info();
    upstream.live.store(Some(Arc::new(Live {
        peer: conn.running.peer().clone(),
        connection,
        direct: conn.direct.clone(),
    })));
    upstream.publish(|s| {
        s.health = Health::Ready;
        s.lists = lists;
        s.capabilities = info.as_ref().map(|i| i.capabilities.clone());
        s.server_info = info.as_ref().and_then(|i| i.server_info.clone());
        s.protocol_version = info.as_ref().map(|i| i.protocol_version.to_string());
    });
    tracing::info!(
        server = upstream.name(),
        transport = upstream.def.transport.kind(),
        tools = upstream.status.load().lists.tools.len(),
        "upstream ready"
    );
    upstream.connected.send_modify(|n| *n += 1);
    // 2026-07-28 upstreams announce list changes only on a `subscriptions/listen` stream.
    let _listener = info
        .as_ref()
        .filter(|i| i.protocol_version.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
        .and_then(|i| list_change_filter(&i.capabilities))
        .map(|filter| {
            AbortOnDrop(tokio::spawn(listen_for_changes(
                upstream.clone(),
                conn.running.peer().clone(),
                filter,
            )))
        });

    let mut ttl = tokio::time::interval(upstream.def.timeouts.list_ttl);
    ttl.tick().await;
    let idle_limit = upstream.def.timeouts.idle;
    let lifetime = upstream.def.timeouts.lifetime;
    let opened = tokio::time::Instant::now();
    let check_every = [idle_limit, lifetime]
        .into_iter()
        .flatten()
        .min()
        .map_or(Duration::from_secs(3600), |d| {
            (d / 4).max(Duration::from_millis(50))
        });
    let mut idle_check = tokio::time::interval(check_every);
    idle_check.tick().await;

    let mut ping = tokio::time::interval(upstream.def.timeouts.ping_interval);
    ping.tick().await;

    let ended = loop {
        let (wanted, announced) = tokio::select! {
            _ = closed(&conn) => break Ended::Closed("connection closed".into()),
            _ = ping.tick() => {
                match health_check(upstream, &conn).await {
                    Ok(()) => continue,
                    Err(reason) => break Ended::Closed(reason),
                }
            }
            _ = upstream.refresh.notified() => (upstream.take_refresh(), true),
            _ = ttl.tick() => (Wanted::ALL, false),
            _ = idle_check.tick() => {
                // Never while a request is in flight: closing would cut it short.
                if upstream.busy() {
                    continue;
                }
                if idle_limit.is_some_and(|limit| upstream.idle_for() >= limit) {
                    tracing::info!(server = upstream.name(), "stopping idle upstream");
                    break Ended::Idle;
                }
                if lifetime.is_some_and(|limit| opened.elapsed() >= limit) {
                    tracing::info!(server = upstream.name(), "closing the upstream connection at its maximum lifetime; the next request opens a fresh one");
                    break Ended::Idle;
                }
                continue;
            }
            _ = upstream.shutdown.cancelled() => break Ended::Shutdown,
        };
        let previous = upstream.status.load().lists.clone();
        match fetch_lists(upstream, &conn, wanted, &previous).await {
            Ok(lists) => {
                if announced {
                    upstream.announce(wanted);
                }
                upstream.publish(|s| s.lists = lists)
            }
            Err(reason) => break Ended::Closed(reason),
        }
    };
    upstream.live.store(None);
    close(conn).await;
    ended
}

/// Pings the upstream (`ping`, or `server/discover` on 2026-07-28). Any answer, even an
/// error, proves the connection alive; silence or a transport failure means it must be replaced. This catches
/// upstreams that lose a session without saying 404 (they then drop requests silently).
async fn health_check(upstream: &Upstream, conn: &Connection<SharedClient>) -> Result<(), String> {
    let timeout = upstream.def.timeouts.connect.min(PING_TIMEOUT);
    // 2026-07-28 has no `ping`; `server/discover` is its cheapest request.
    let modern = conn.running.peer().peer_info().is_some_and(|info| {
        info.protocol_version.as_str() >= ProtocolVersion::V_2026_07_28.as_str()
    });
    let ping = if modern {
        ClientRequest::DiscoverRequest(DiscoverRequest::new(DiscoverRequestParams::default()))
    } else {
        ClientRequest::PingRequest(PingRequest::default())
    };
    let sent = conn
        .running
        .peer()
        .send_request_with_option(ping, PeerRequestOptions::with_timeout(timeout))
        .await;
    let answer = match sent {
        Ok(handle) => handle.await_response().await,
        Err(err) => Err(err),
    };
    match answer {
        Ok(_) | Err(rmcp::ServiceError::McpError(_)) => Ok(()),
        Err(err) => Err(format!("health check failed: {err}")),
    }
}

/// Aborts a background task when dropped (the listener ends with its connection).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The list-change notifications an upstream can send, as a listen filter.
fn list_change_filter(caps: &ServerCapabilities) -> Option<SubscriptionFilter> {
    let mut filter = SubscriptionFilter::new();
    let changed = |flag: Option<bool>| flag == Some(true);
    if caps.tools.as_ref().is_some_and(|c| changed(c.list_changed)) {
        filter.tools_list_changed = Some(true);
    }
    if caps
        .prompts
        .as_ref()
        .is_some_and(|c| changed(c.list_changed))
    {
        filter.prompts_list_changed = Some(true);
    }
    if caps
        .resources
        .as_ref()
        .is_some_and(|c| changed(c.list_changed))
    {
        filter.resources_list_changed = Some(true);
    }
    let any = filter.tools_list_changed.is_some()
        || filter.prompts_list_changed.is_some()
        || filter.resources_list_changed.is_some();
    any.then_some(filter)
}

/// Keeps a `subscriptions/listen` stream open to a 2026-07-28 upstream and turns its
/// list-change notifications into re-lists.
async fn listen_for_changes(
    upstream: Arc<Upstream>,
    peer: Peer<RoleClient>,
    filter: SubscriptionFilter,
) {
    let mut subscription = match peer.listen(filter).await {
        Ok(s) => s,
        Err(err) => {
            tracing::info!(server = upstream.name(), %err, "upstream refused subscriptions/listen; relying on the list TTL");
            return;
        }
    };
    loop {
        let wanted = match subscription.next().await {
            Ok(Some(ServerNotification::ToolListChangedNotification(_))) => Wanted {
                tools: true,
                ..Wanted::default()
            },
            Ok(Some(ServerNotification::PromptListChangedNotification(_))) => Wanted {
                prompts: true,
                ..Wanted::default()
            },
            Ok(Some(ServerNotification::ResourceListChangedNotification(_))) => Wanted {
                resources: true,
                ..Wanted::default()
            },
            Ok(Some(_)) => continue,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(server = upstream.name(), %err, "upstream listen stream ended");
                return;
            }
        };
        upstream.request_refresh(wanted);
    }
}

/// Resolves when the connection's service loop has ended.
async fn closed(conn: &Connection<SharedClient>) {
    loop {
        if conn.running.is_closed() || conn.running.peer().is_transport_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn close(conn: Connection<SharedClient>) {
    connect::close(conn, CHILD_GRACE).await;
}

/// What a one-off connection to a definition found (`POST …/servers/validate`).
#[derive(Debug, Clone)]
pub struct Probe {
    pub tools: Vec<rmcp::model::Tool>,
    /// `serverInfo`: name and version.
    pub server_info: Option<String>,
    pub protocol_version: Option<String>,
}

/// Connects to `def` (secrets already filled in), lists its tools and disconnects, within
/// the definition's connect and request timeouts. The error says what failed, in words an
/// admin can act on.
pub async fn probe(def: &UpstreamDef) -> Result<Probe, String> {
    let http = super::network::http_client(def)?;
    super::network::check_host(def).await?;
    let handler = SharedClient {
        upstream: std::sync::Weak::new(),
        connection: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
        server: def.name.as_str().to_owned(),
    };
    let conn = tokio::time::timeout(
        def.timeouts.connect,
        connect::open(def, handler, &http, connect::Lifecycle::Newest),
    )
    .await
    .map_err(|_| format!("no handshake within {:?}", def.timeouts.connect))??;
    let peer = conn.running.peer().clone();
    let info = peer.peer_info();
    let caps = info.as_ref().map(|i| i.capabilities.clone());
    let wanted = Wanted {
        tools: true,
        ..Wanted::default()
    };
    let listed = tokio::time::timeout(
        def.timeouts.request,
        lists::fetch(&peer, caps.as_ref(), wanted, &Lists::default()),
    )
    .await;
    let probe = Probe {
        tools: Vec::new(),
        server_info: info
            .as_ref()
            .and_then(|i| i.server_info.as_ref())
            .map(|s| format!("{} {}", s.name, s.version)),
        protocol_version: info.as_ref().map(|i| i.protocol_version.to_string()),
    };
    // As the supervisor closes: a stdio child gets its grace period.
    connect::close(conn, CHILD_GRACE).await;
    match listed {
        Ok(Ok(lists)) => Ok(Probe {
            tools: lists.tools.as_ref().clone(),
            ..probe
        }),
        Ok(Err(e)) => Err(format!("listing tools failed: {e}")),
        Err(_) => Err(format!(
            "listing tools took longer than {:?}",
            def.timeouts.request
        )),
    }
}
