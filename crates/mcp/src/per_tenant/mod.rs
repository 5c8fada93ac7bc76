//! Connections of one tenant (or one user) to upstreams whose definitions have placeholders.
//!
//! A definition with `{{secret.NAME}}` or `{{tenant}}` in a header, an environment value or
//! its URL has no shared connection. The first request of a tenant that may use it resolves
//! the secrets (the calling user's own before the tenant's, through a [`SecretSource`]),
//! renders the definition and starts a supervised [`Upstream`] owned by that tenant — or by
//! that user, when one of the values is the user's own. Such a connection is never used for
//! anyone else: its lists make up that caller's view of the catalog, its calls carry only
//! that owner's credentials, and its resource updates reach only that tenant's clients.
//!
//! Nothing here reads the database per request: which connection serves a caller is
//! remembered for [`RECHECK`] (a secret changed on this replica forgets it at once, see
//! [`PerTenant::forget`]); a changed value shows as a new fingerprint and replaces the
//! connection. Connections are bounded in number (in all and per tenant) and closed after
//! [`IDLE`] without use.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use switchboard_domain::tenancy::{Identity, TenantId, UserId};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::catalog::{Catalog, Override};
use crate::error::GatewayError;
use crate::hub::Hub;
use crate::session::SessionLinks;
use crate::upstream::{Lists, Owner, Upstream};

mod owned;
mod upkeep;

use upkeep::maintain;

/// How long a caller's connection choice (and a missing secret) is trusted before the
/// secrets are looked up again (changes made on another replica show within this).
pub const RECHECK: Duration = Duration::from_secs(30);
/// A tenant's connection unused this long is closed (a stdio child stops).
pub const IDLE: Duration = Duration::from_secs(600);

/// The secrets one caller's connection is made with.
pub struct Resolved {
    /// By secret name.
    pub values: BTreeMap<String, SecretString>,
    /// True when at least one value is the user's own: the connection is then that user's.
    pub per_user: bool,
    /// Changes whenever a value used here changes (owner, name and version of each).
    pub fingerprint: u64,
}

/// Why secrets could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretLookupError {
    /// Neither the user nor the tenant has set it.
    #[error("secret {0:?} is not set")]
    Missing(String),
    /// The vault failed (database, decryption).
    #[error("{0}")]
    Failed(String),
}

/// Where the secrets of per-tenant definitions come from (the server's vault).
pub trait SecretSource: Send + Sync + 'static {
    /// The values of `names` for `user` (when a user calls) in `tenant`: the user's own
    /// secret before the tenant's.
    fn resolve<'a>(
        &'a self,
        tenant: &'a TenantId,
        user: Option<&'a UserId>,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Resolved, SecretLookupError>>;
}

/// Limits on per-tenant connections.
#[derive(Debug, Clone, Copy)]
pub struct PerTenantLimits {
    /// Open at once, all tenants together.
    pub total: usize,
    /// Open at once for one tenant (its users' own connections included).
    pub per_tenant: usize,
}

impl Default for PerTenantLimits {
    fn default() -> Self {
        Self {
            total: 1000,
            per_tenant: 20,
        }
    }
}

/// Whose connection: an upstream, a tenant, and the user when it carries the user's own
/// secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    index: usize,
    tenant: TenantId,
    user: Option<UserId>,
}

struct Instance {
    upstream: Arc<Upstream>,
    fingerprint: u64,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Instance {
    fn close(&self) -> Option<JoinHandle<()>> {
        self.stop.cancel();
        self.task.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What a caller was bound to when last checked.
enum Bound {
    To(Key),
    Missing(String),
}

struct Binding {
    bound: Bound,
    checked: Instant,
}

/// A caller's view of the catalog, cached: built from the shared catalog's generation and
/// this pool's.
struct View {
    shared: u64,
    ours: u64,
    built: Instant,
    catalog: Arc<Catalog>,
}

/// Most cached views; beyond it the cache starts over (views are cheap to rebuild).
const MAX_VIEWS: usize = 1024;

/// A tenant's own servers (templates: each connection is made from one).
type Owned = HashMap<TenantId, Arc<[Arc<Upstream>]>>;

/// Every tenant's connections to the per-tenant upstreams: catalog definitions with
/// placeholders, and the servers tenants defined for themselves.
pub struct PerTenant {
    /// Indices of the catalog upstreams with placeholders.
    indices: Vec<usize>,
    /// Each tenant's own servers, numbered from the catalog's length up (a changed
    /// definition gets a new number, so its old connections are never reused).
    owned: ArcSwap<Owned>,
    any_owned: AtomicBool,
    next_index: AtomicUsize,
    source: OnceLock<Arc<dyn SecretSource>>,
    instances: Mutex<HashMap<Key, Arc<Instance>>>,
    /// Keyed by the caller (its user, if any), not by the connection.
    bindings: Mutex<HashMap<Key, Binding>>,
    views: Mutex<HashMap<(TenantId, Option<UserId>), View>>,
    /// Bumped when a connection comes, goes or changes its lists.
    generation: AtomicU64,
    dirty: Arc<Notify>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    limits: PerTenantLimits,
    work_dir: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn user_of(caller: &Caller) -> Option<&UserId> {
    match &caller.principal.identity {
        Identity::User(user) => Some(user),
        _ => None,
    }
}

impl PerTenant {
    /// The pool for `upstreams`, with its maintenance task (list changes, idle closing).
    pub(crate) fn start(
        upstreams: &[Arc<Upstream>],
        hub: Arc<Hub>,
        shutdown: CancellationToken,
        config: &crate::GatewayConfig,
    ) -> (Arc<PerTenant>, Option<JoinHandle<()>>) {
        let indices: Vec<usize> = upstreams
            .iter()
            .filter(|u| u.def().has_own_connections())
            .map(|u| u.index())
            .collect();
        let pool = Arc::new(PerTenant {
            indices,
            owned: ArcSwap::from_pointee(HashMap::new()),
            any_owned: AtomicBool::new(false),
            next_index: AtomicUsize::new(upstreams.len()),
            source: OnceLock::new(),
            instances: Mutex::new(HashMap::new()),
            bindings: Mutex::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            dirty: Arc::new(Notify::new()),
            hub,
            shutdown,
            limits: config.per_tenant,
            work_dir: config.work_dir.clone(),
        });
        let task = Some(tokio::spawn(maintain(pool.clone())));
        (pool, task)
    }

    /// Whether `tenant`'s requests need this pool: some catalog upstream has placeholders,
    /// or the tenant has servers of its own. Otherwise the shared catalog serves them.
    pub fn serves(&self, tenant: &TenantId) -> bool {
        !self.indices.is_empty()
            || (self.any_owned.load(Ordering::Acquire) && self.owned.load().contains_key(tenant))
    }

    /// The per-tenant upstreams `tenant` may use: catalog definitions with placeholders,
    /// then its own servers.
    fn templates_for(&self, upstreams: &[Arc<Upstream>], tenant: &TenantId) -> Vec<Arc<Upstream>> {
        let mut templates: Vec<Arc<Upstream>> = self
            .indices
            .iter()
            .map(|&i| upstreams[i].clone())
            .filter(|u| u.def().available_to(tenant) && u.def().own_connection_for(tenant))
            .collect();
        if let Some(own) = self.owned_by(tenant) {
            templates.extend(own.iter().cloned());
        }
        templates
    }

    /// Sets where secrets come from (once, at startup).
    pub fn set_source(&self, source: Arc<dyn SecretSource>) {
        let _ = self.source.set(source);
    }

    /// Forgets which connections `tenant`'s callers use, so the next request looks its
    /// secrets up again (a secret was set or deleted).
    pub fn forget(&self, tenant: &TenantId) {
        lock(&self.bindings).retain(|key, _| &key.tenant != tenant);
        lock(&self.views).retain(|(t, _), _| t != tenant);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Open connections of `tenant`, each with the user who owns it (none: the tenant's).
    pub fn connections_of(&self, tenant: &TenantId) -> Vec<(Arc<Upstream>, Option<UserId>)> {
        lock(&self.instances)
            .iter()
            .filter(|(key, _)| &key.tenant == tenant)
            .map(|(key, instance)| (instance.upstream.clone(), key.user.clone()))
            .collect()
    }

    /// The connection that serves `caller` for the per-tenant upstream `template`, opened
    /// (and its secrets resolved) when needed.
    pub(crate) async fn connection(
        &self,
        template: &Arc<Upstream>,
        caller: &Caller,
    ) -> Result<Arc<Upstream>, GatewayError> {
        let tenant = caller.tenant();
        // A definition that may not take users' own secrets is the tenant's connection for
        // every user.
        let user = user_of(caller).filter(|_| template.def().user_secrets);
        let asked = Key {
            index: template.index(),
            tenant: tenant.clone(),
            user: user.cloned(),
        };
        if let Some(binding) = lock(&self.bindings).get(&asked)
            && binding.checked.elapsed() < RECHECK
        {
            match &binding.bound {
                Bound::Missing(secret) => {
                    return Err(GatewayError::MissingSecret {
                        server: template.name().to_owned(),
                        secret: secret.clone(),
                    });
                }
                Bound::To(key) => {
                    if let Some(instance) = lock(&self.instances).get(key) {
                        return Ok(instance.upstream.clone());
                    }
                }
            }
        }
        let resolved = self.resolve(template, tenant, asked.user.as_ref()).await;
        let resolved = match resolved {
            Ok(resolved) => resolved,
            Err(SecretLookupError::Missing(secret)) => {
                self.bind(asked, Bound::Missing(secret.clone()));
                return Err(GatewayError::MissingSecret {
                    server: template.name().to_owned(),
                    secret,
                });
            }
            Err(SecretLookupError::Failed(reason)) => {
                return Err(GatewayError::Unavailable {
                    server: template.name().to_owned(),
                    reason: format!("its secrets could not be read: {reason}"),
                });
            }
        };
        let key = Key {
            user: asked.user.clone().filter(|_| resolved.per_user),
            ..asked.clone()
        };
        let upstream = self.instance(template, key.clone(), resolved)?;
        self.bind(asked, Bound::To(key));
        Ok(upstream)
    }

    async fn resolve(
        &self,
        template: &Upstream,
        tenant: &TenantId,
        user: Option<&UserId>,
    ) -> Result<Resolved, SecretLookupError> {
        let names = &template.def().secrets;
        if names.is_empty() {
            return Ok(Resolved {
                values: BTreeMap::new(),
                per_user: false,
                fingerprint: 0,
            });
        }
        let source = self.source.get().ok_or_else(|| {
            SecretLookupError::Failed("this gateway has no secret store configured".into())
        })?;
        source.resolve(tenant, user, names).await
    }

    fn bind(&self, caller: Key, bound: Bound) {
        lock(&self.bindings).insert(
            caller,
            Binding {
                bound,
                checked: Instant::now(),
            },
        );
    }

    /// The connection for `key`: the running one when made from the same secrets, else a
    /// new one (replacing one made from older values).
    fn instance(
        &self,
        template: &Upstream,
        key: Key,
        resolved: Resolved,
    ) -> Result<Arc<Upstream>, GatewayError> {
        let mut instances = lock(&self.instances);
        // Checked under the instances lock: `set_owned` stops a retired template before it
        // closes that template's connections under the same lock, so none survives it.
        if template.is_stopped() {
            return Err(GatewayError::Unavailable {
                server: template.name().to_owned(),
                reason: "its definition just changed; retry".into(),
            });
        }
        if let Some(existing) = instances.get(&key) {
            if existing.fingerprint == resolved.fingerprint {
                return Ok(existing.upstream.clone());
            }
            tracing::info!(server = template.name(), tenant = %key.tenant, "a secret changed; replacing the tenant's upstream connection");
            if let Some(old) = instances.remove(&key) {
                drop(old.close());
            }
        } else {
            let of_tenant = instances.keys().filter(|k| k.tenant == key.tenant).count();
            let full = if instances.len() >= self.limits.total {
                Some(format!(
                    "the gateway's limit of per-tenant upstream connections ({}) is reached",
                    self.limits.total
                ))
            } else if of_tenant >= self.limits.per_tenant {
                Some(format!(
                    "tenant {}'s limit of upstream connections ({}) is reached",
                    key.tenant, self.limits.per_tenant
                ))
            } else {
                None
            };
            if let Some(reason) = full {
                return Err(GatewayError::Unavailable {
                    server: template.name().to_owned(),
                    reason: format!(
                        "{reason}; unused ones close after {} min",
                        IDLE.as_secs() / 60
                    ),
                });
            }
        }
        let values = &resolved.values;
        let mut def = template.def().render(&key.tenant, |name| {
            values.get(name).map(|v| v.expose_secret())
        });
        self.place(&mut def, &key.tenant)
            .map_err(|reason| GatewayError::Unavailable {
                server: template.name().to_owned(),
                reason,
            })?;
        let stop = self.shutdown.child_token();
        let (upstream, task) = Upstream::spawn_for(
            key.index,
            def,
            self.hub.clone(),
            self.dirty.clone(),
            stop.clone(),
            Owner {
                tenant: Some(key.tenant.clone()),
                redactions: values
                    .values()
                    .flat_map(|v| {
                        let raw = v.expose_secret();
                        // A URL carries it percent-encoded.
                        [
                            raw.to_owned(),
                            switchboard_domain::template::url_encoded(raw),
                        ]
                    })
                    .collect(),
            },
        );
        tracing::info!(server = template.name(), tenant = %key.tenant, own = key.user.is_some(), "opening a tenant's upstream connection");
        instances.insert(
            key,
            Arc::new(Instance {
                upstream: upstream.clone(),
                fingerprint: resolved.fingerprint,
                stop,
                task: Mutex::new(Some(task)),
            }),
        );
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(upstream)
    }

    /// `caller`'s view of the catalog: the shared catalog with the lists of the caller's own
    /// connections to the per-tenant upstreams its tenant may use (and a session's own
    /// connections, when it has any). Opening a connection waits for its first lists.
    pub(crate) async fn view(
        &self,
        upstreams: &[Arc<Upstream>],
        shared: &Arc<Catalog>,
        caller: &Caller,
        links: Option<&SessionLinks>,
        finish: impl Fn(Catalog) -> Catalog,
    ) -> Arc<Catalog> {
        let tenant = caller.tenant();
        let view_key = (tenant.clone(), user_of(caller).cloned());
        let ours = self.generation.load(Ordering::Acquire);
        if links.is_none()
            && let Some(view) = lock(&self.views).get(&view_key)
            && view.shared == shared.generation
            && view.ours == ours
            && view.built.elapsed() < RECHECK
        {
            return view.catalog.clone();
        }
        let mut overrides: HashMap<usize, Override> = HashMap::new();
        let own = self.owned_by(tenant);
        for template in self.templates_for(upstreams, tenant) {
            let index = template.index();
            let upstream = match self.connection(&template, caller).await {
                Ok(upstream) => upstream,
                Err(err) => {
                    tracing::debug!(server = template.name(), %tenant, %err, "per-tenant upstream left out of the list");
                    continue;
                }
            };
            if let Err(err) = upstream.live().await {
                tracing::debug!(server = upstream.name(), %tenant, %err, "per-tenant upstream not reachable; its last lists are used");
            }
            let status = upstream.status();
            overrides.insert(index, (status.lists.clone(), status.capabilities.clone()));
        }
        // The catalog's upstreams, then the tenant's own servers.
        let all: Vec<Arc<Upstream>>;
        let listed = match &own {
            Some(own) => {
                all = upstreams.iter().chain(own.iter()).cloned().collect();
                &all[..]
            }
            None => upstreams,
        };
        let mut catalog = Catalog::build_with(listed, |index| {
            links
                .and_then(|l| l.link(index))
                .map(|link| link.lists())
                .or_else(|| overrides.get(&index).cloned())
                .or_else(|| {
                    // Left out: no lists at all rather than another tenant's or another
                    // endpoint's (a tenant's own server always has its own connection).
                    let catalog_server = upstreams
                        .get(index)
                        .is_some_and(|u| !u.def().own_connection_for(tenant));
                    (!catalog_server).then(|| (Lists::default(), None))
                })
        });
        catalog.generation = shared.generation;
        let catalog = Arc::new(finish(catalog));
        if links.is_none() {
            let mut views = lock(&self.views);
            if views.len() >= MAX_VIEWS {
                views.clear();
            }
            views.insert(
                view_key,
                View {
                    shared: shared.generation,
                    ours,
                    built: Instant::now(),
                    catalog: catalog.clone(),
                },
            );
        }
        catalog
    }

    /// Which per-tenant upstream an exposed tool name would belong to, if the caller could
    /// see it once its secrets are set: explains an unknown name by the missing secret.
    pub(crate) async fn explain_unknown(
        &self,
        upstreams: &[Arc<Upstream>],
        caller: &Caller,
        exposed: &str,
        visible: impl Fn(&Upstream, &str) -> bool,
    ) -> Option<GatewayError> {
        for upstream in self.templates_for(upstreams, caller.tenant()) {
            let def = upstream.def();
            if def.prefix.is_empty() {
                continue;
            }
            let Some(name) = exposed
                .strip_prefix(def.prefix.as_str())
                .and_then(|rest| rest.strip_prefix(switchboard_domain::names::SEPARATOR))
            else {
                continue;
            };
            if !visible(&upstream, name) {
                continue;
            }
            if let Err(err @ GatewayError::MissingSecret { .. }) =
                self.connection(&upstream, caller).await
            {
                return Some(err);
            }
        }
        None
    }

    /// Closes every connection and waits for their supervisors (gateway shutdown).
    pub(crate) async fn close_all(&self) {
        let tasks: Vec<_> = lock(&self.instances)
            .drain()
            .filter_map(|(_, instance)| instance.close())
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}
