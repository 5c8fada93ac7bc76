//! Upkeep of the per-tenant connections: list changes told to their tenant's clients, idle
//! connections closed, working folders created.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchboard_domain::tenancy::TenantId;
use switchboard_domain::{UpstreamDef, UpstreamTransport};

use super::{Bound, IDLE, Key, PerTenant, lock};
use crate::hub::ListChanges;
use crate::upstream::{Lists, Upstream};

/// Creates `dir` (and its parents), readable by the gateway's user only.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl PerTenant {
    /// Puts a tenant's stdio child without a `cwd` of its own into
    /// `{work_dir}/{tenant}/{server}`, created private to the gateway's user.
    pub(super) fn place(&self, def: &mut UpstreamDef, tenant: &TenantId) -> Result<(), String> {
        if let UpstreamTransport::Stdio {
            cwd: cwd @ None, ..
        } = &mut def.transport
            && let Some(root) = &self.work_dir
        {
            let dir = root.join(tenant.as_str()).join(def.name.as_str());
            private_dir(&dir)
                .map_err(|e| format!("cannot create the tenant's working folder: {e}"))?;
            *cwd = Some(dir.display().to_string());
        }
        Ok(())
    }

    /// Connects once to `def` (placeholders filled in) as `tenant`'s connection would —
    /// same working folder, limits and network rules — lists its tools and disconnects.
    pub async fn probe(
        &self,
        tenant: &TenantId,
        mut def: UpstreamDef,
    ) -> Result<crate::upstream::Probe, String> {
        self.place(&mut def, tenant)?;
        crate::upstream::probe(&def).await
    }
}

/// Tells a tenant's clients about its connections' list changes, and closes idle
/// connections.
pub(super) async fn maintain(pool: Arc<PerTenant>) {
    let mut seen: HashMap<Key, Lists> = HashMap::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(30));
    sweep.tick().await;
    loop {
        tokio::select! {
            _ = pool.dirty.notified() => {}
            _ = sweep.tick() => {
                close_idle(&pool).await;
                continue;
            }
            _ = pool.shutdown.cancelled() => return,
        }
        // Coalesce bursts, as the shared catalog does.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let current: Vec<(Key, Arc<Upstream>)> = lock(&pool.instances)
            .iter()
            .map(|(k, i)| (k.clone(), i.upstream.clone()))
            .collect();
        let mut changed_tenants: HashMap<TenantId, ListChanges> = HashMap::new();
        for (key, upstream) in &current {
            let announced = upstream.take_announced();
            let lists = upstream.status().lists.clone();
            let before = seen.insert(key.clone(), lists.clone());
            let changes = ListChanges {
                tools: announced.tools || before.as_ref().is_some_and(|b| b.tools != lists.tools),
                prompts: announced.prompts
                    || before.as_ref().is_some_and(|b| b.prompts != lists.prompts),
                resources: announced.resources
                    || before.as_ref().is_some_and(|b| {
                        b.resources != lists.resources
                            || b.resource_templates != lists.resource_templates
                    }),
            };
            if changes.any() {
                changed_tenants
                    .entry(key.tenant.clone())
                    .or_default()
                    .add(changes);
            }
        }
        seen.retain(|key, _| current.iter().any(|(k, _)| k == key));
        pool.generation.fetch_add(1, Ordering::AcqRel);
        for (tenant, changes) in changed_tenants {
            let audience = |t: &TenantId| t == &tenant;
            pool.hub.broadcast_list_changes(changes, &audience).await;
        }
    }
}

async fn close_idle(pool: &PerTenant) {
    let idle: Vec<_> = {
        let mut instances = lock(&pool.instances);
        let keys: Vec<Key> = instances
            .iter()
            .filter(|(_, i)| {
                let limit = i.upstream.def().timeouts.idle.map_or(IDLE, |d| d.max(IDLE));
                i.upstream.idle_for() >= limit
            })
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| instances.remove(&k).map(|i| (k, i)))
            .collect()
    };
    if idle.is_empty() {
        return;
    }
    lock(&pool.bindings).retain(|_, b| match &b.bound {
        Bound::To(key) => !idle.iter().any(|(k, _)| k == key),
        Bound::Missing(_) => true,
    });
    pool.generation.fetch_add(1, Ordering::AcqRel);
    for (key, instance) in idle {
        tracing::info!(server = instance.upstream.name(), tenant = %key.tenant, "closing an idle tenant's upstream connection");
        if let Some(task) = instance.close() {
            let _ = task.await;
        }
    }
}
