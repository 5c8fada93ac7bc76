//! Upstream connections owned by one downstream session (`isolation = "per-session"`).
//!
//! On a shared connection an upstream's server-to-client requests (sampling, elicitation,
//! roots) and its log messages cannot be attributed to a client. For upstreams configured
//! with per-session isolation, every legacy downstream session gets its own connection that
//! declares exactly the capabilities the client declared, routes those requests to that
//! client, and closes (killing a stdio child) when the session ends. 2026-07-28 clients are
//! stateless and keep using the shared connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rmcp::ErrorData;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{
    ClientConfig, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequest, ElicitRequestParams, ElicitResult, InputRequest, ListRootsRequest,
    ListRootsResult, LoggingMessageNotificationParam, ProgressNotificationParam,
    ResourceUpdatedNotificationParam, ServerCapabilities,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, RoleClient, RoleServer};
use switchboard_domain::tenancy::TenantId;
use switchboard_domain::{Isolation, exposed_uri};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::{Catalog, Override};
use crate::upstream::connect::{self, Connection};
use crate::upstream::lists::{self, Lists, Wanted};
use crate::upstream::supervisor::CHILD_GRACE;
use crate::upstream::{Live, NEXT_CONNECTION, Upstream, client_info};

/// State of one session-owned connection, shared with its client handler.
struct LinkState {
    upstream: Arc<Upstream>,
    peer: std::sync::OnceLock<Peer<RoleClient>>,
    lists: ArcSwap<Override>,
    /// Session-wide: bumped when any link's lists change.
    generation: Arc<AtomicU64>,
}

/// One session-owned connection.
pub struct SessionLink {
    pub live: Live,
    state: Arc<LinkState>,
    conn: Mutex<Option<Connection<SessionClient>>>,
    /// Counts against `max_session_connections` while the link lives.
    _permit: OwnedSemaphorePermit,
}

impl SessionLink {
    /// The lists (and capabilities) this connection announced.
    pub(crate) fn lists(&self) -> Override {
        Override::clone(&self.state.lists.load())
    }

    /// Closes the connection now (a bridged call's link ends with its call).
    pub(crate) async fn close(self) {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(conn) = conn {
            connect::close(conn, CHILD_GRACE).await;
        }
    }
}

/// All connections of one downstream session, by upstream index.
pub struct SessionLinks {
    links: HashMap<usize, SessionLink>,
    generation: Arc<AtomicU64>,
    cache: Mutex<Option<(u64, u64, Arc<Catalog>)>>,
}

impl SessionLinks {
    /// Opens a connection to every per-session upstream for `downstream`; upstreams that
    /// cannot be reached are left to the shared connection (and logged).
    pub async fn open(
        upstreams: &[Arc<Upstream>],
        tenant: &TenantId,
        downstream: &Peer<RoleServer>,
        http: &reqwest::Client,
        permits: &Arc<Semaphore>,
    ) -> SessionLinks {
        let generation = Arc::new(AtomicU64::new(0));
        let capabilities = downstream
            .peer_info()
            .map(|info| info.capabilities.clone())
            .unwrap_or_default();
        let opening = upstreams
            .iter()
            // Only servers the session's tenant may use get a connection of its own.
            .filter(|u| u.def().isolation == Isolation::PerSession && u.def().available_to(tenant))
            .map(|upstream| {
                let mut info = client_info();
                info.capabilities = capabilities.clone();
                open_link(
                    upstream.clone(),
                    Downstream::Session(downstream.clone()),
                    info,
                    generation.clone(),
                    http,
                    permits,
                )
            });
        let mut links = HashMap::new();
        for (index, result) in futures::future::join_all(opening).await {
            match result {
                Ok(link) => {
                    links.insert(index, link);
                }
                Err(reason) => tracing::warn!(
                    server = upstreams[index].name(),
                    %reason,
                    "could not open the session's own upstream connection; using the shared one"
                ),
            }
        }
        SessionLinks {
            links,
            generation,
            cache: Mutex::new(None),
        }
    }

    /// The session's connection to upstream `index`, if it has one.
    pub fn link(&self, index: usize) -> Option<&SessionLink> {
        self.links.get(&index)
    }

    /// The session's connections with their upstream index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &SessionLink)> {
        self.links.iter().map(|(index, link)| (*index, link))
    }

    /// True when the session has no connection of its own.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The session's view of the catalog: the shared one with this session's lists for its
    /// own connections. Rebuilt only when either side changed.
    pub fn catalog(&self, upstreams: &[Arc<Upstream>], shared: &Catalog) -> Arc<Catalog> {
        let session_gen = self.generation.load(Ordering::Acquire);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((shared_gen, cached_gen, catalog)) = cache.as_ref()
            && *shared_gen == shared.generation
            && *cached_gen == session_gen
        {
            return catalog.clone();
        }
        let mut catalog = Catalog::build_with(upstreams, |index| {
            self.links
                .get(&index)
                .map(|l| Override::clone(&l.state.lists.load()))
        });
        catalog.generation = shared.generation;
        let catalog = Arc::new(catalog);
        *cache = Some((shared.generation, session_gen, catalog.clone()));
        catalog
    }

    /// Tells every session-owned upstream that the client's roots changed.
    pub async fn notify_roots_changed(&self) {
        for link in self.links.values() {
            let _ = link.live.peer.notify_roots_list_changed().await;
        }
    }
}

impl Drop for SessionLinks {
    fn drop(&mut self) {
        let conns: Vec<_> = self
            .links
            .values()
            .filter_map(|l| l.conn.lock().unwrap_or_else(|p| p.into_inner()).take())
            .collect();
        if conns.is_empty() {
            return;
        }
        // Close gracefully when a runtime is there; otherwise the child group's own Drop
        // kills the processes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for conn in conns {
                    connect::close(conn, CHILD_GRACE).await;
                }
            });
        }
    }
}

pub(crate) async fn open_link(
    upstream: Arc<Upstream>,
    downstream: Downstream,
    info: ClientConfig,
    generation: Arc<AtomicU64>,
    http: &reqwest::Client,
    permits: &Arc<Semaphore>,
) -> (usize, Result<SessionLink, String>) {
    let index = upstream.index();
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        return (
            index,
            Err("the gateway's limit of session-owned upstream connections (server.max_session_connections) is reached".into()),
        );
    };
    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let state = Arc::new(LinkState {
        upstream: upstream.clone(),
        peer: std::sync::OnceLock::new(),
        lists: ArcSwap::from_pointee((Lists::default(), None)),
        generation,
    });
    let handler = SessionClient {
        downstream,
        info,
        connection,
        state: state.clone(),
    };
    let def = upstream.def();
    // The session's own connection speaks the legacy (session) protocol, like its client:
    // server-to-client requests and log messages then flow as they would directly.
    let opened = tokio::time::timeout(
        def.timeouts.connect,
        connect::open(def, handler, http, connect::Lifecycle::Session),
    )
    .await;
    let conn = match opened {
        Ok(Ok(conn)) => conn,
        Ok(Err(reason)) => return (index, Err(reason)),
        Err(_) => {
            return (
                index,
                Err(format!("no handshake within {:?}", def.timeouts.connect)),
            );
        }
    };
    let peer = conn.running.peer().clone();
    let caps = peer.peer_info().map(|i| i.capabilities.clone());
    match tokio::time::timeout(
        def.timeouts.request,
        lists::fetch(&peer, caps.as_ref(), Wanted::ALL, &Lists::default()),
    )
    .await
    {
        Ok(Ok(fetched)) => state.lists.store(Arc::new((fetched, caps))),
        Ok(Err(e)) => {
            connect::close(conn, CHILD_GRACE).await;
            return (index, Err(format!("listing failed: {e}")));
        }
        Err(_) => {
            connect::close(conn, CHILD_GRACE).await;
            return (index, Err("listing timed out".into()));
        }
    }
    let _ = state.peer.set(peer.clone());
    let link = SessionLink {
        live: Live {
            peer,
            connection,
            direct: None,
        },
        state,
        conn: Mutex::new(Some(conn)),
        _permit: permit,
    };
    (index, Ok(link))
}

/// Where a session-owned connection's server-to-client traffic goes.
#[derive(Clone)]
pub enum Downstream {
    /// A legacy session: requests and notifications go straight to its peer.
    Session(Peer<RoleServer>),
    /// A 2026-07-28 request being bridged (see [`crate::bridge`]): input requests become
    /// `input_required` rounds; notifications have no session to go to.
    Bridge(crate::bridge::InputSender),
}

/// Handles what an upstream sends on a session-owned connection: everything goes to the
/// one downstream client of that session.
#[derive(Clone)]
pub struct SessionClient {
    downstream: Downstream,
    info: ClientConfig,
    connection: u64,
    state: Arc<LinkState>,
}

fn relay_error(err: rmcp::ServiceError) -> ErrorData {
    match err {
        rmcp::ServiceError::McpError(e) => e,
        other => {
            ErrorData::internal_error(format!("the client could not be reached: {other}"), None)
        }
    }
}

impl SessionClient {
    fn refresh(&self, wanted: Wanted) {
        let state = self.state.clone();
        let Downstream::Session(downstream) = self.downstream.clone() else {
            return; // a bridged request lives too briefly to re-list
        };
        tokio::spawn(async move {
            let Some(peer) = state.peer.get().cloned() else {
                return;
            };
            let (previous, caps): (Lists, Option<ServerCapabilities>) =
                Override::clone(&state.lists.load());
            let timeout = state.upstream.def().timeouts.request;
            match tokio::time::timeout(
                timeout,
                lists::fetch(&peer, caps.as_ref(), wanted, &previous),
            )
            .await
            {
                Ok(Ok(fetched)) => {
                    state.lists.store(Arc::new((fetched, caps)));
                    state.generation.fetch_add(1, Ordering::AcqRel);
                    if wanted.tools {
                        let _ = downstream.notify_tool_list_changed().await;
                    }
                    if wanted.prompts {
                        let _ = downstream.notify_prompt_list_changed().await;
                    }
                    if wanted.resources {
                        let _ = downstream.notify_resource_list_changed().await;
                    }
                }
                Ok(Err(err)) => {
                    tracing::warn!(server = state.upstream.name(), %err, "session re-list failed")
                }
                Err(_) => {
                    tracing::warn!(server = state.upstream.name(), "session re-list timed out")
                }
            }
        });
    }
}

impl ClientHandler for SessionClient {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        match &self.downstream {
            Downstream::Session(peer) => peer.create_message(params).await.map_err(relay_error),
            Downstream::Bridge(bridge) => {
                bridge
                    .ask(InputRequest::CreateMessage(CreateMessageRequest::new(
                        params,
                    )))
                    .await
            }
        }
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        match &self.downstream {
            Downstream::Session(peer) => {
                peer.create_elicitation(request).await.map_err(relay_error)
            }
            Downstream::Bridge(bridge) => {
                bridge
                    .ask(InputRequest::Elicitation(ElicitRequest::new(request)))
                    .await
            }
        }
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        match &self.downstream {
            Downstream::Session(peer) => peer.list_roots().await.map_err(relay_error),
            Downstream::Bridge(bridge) => {
                bridge
                    .ask(InputRequest::ListRoots(ListRootsRequest::default()))
                    .await
            }
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.state
            .upstream
            .hub()
            .forward_progress(self.connection, params)
            .await;
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Downstream::Session(peer) = &self.downstream {
            let _ = peer.notify_logging_message(params).await;
        }
    }

    async fn on_resource_updated(
        &self,
        mut params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        params.uri = exposed_uri(&self.state.upstream.def().prefix, &params.uri);
        if let Downstream::Session(peer) = &self.downstream {
            let _ = peer.notify_resource_updated(params).await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh(Wanted {
            tools: true,
            ..Wanted::default()
        });
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh(Wanted {
            prompts: true,
            ..Wanted::default()
        });
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh(Wanted {
            resources: true,
            ..Wanted::default()
        });
    }
}
