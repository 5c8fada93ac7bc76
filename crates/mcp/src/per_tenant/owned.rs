//! The servers tenants define for themselves: templates published from the directory
//! snapshot. An unchanged definition keeps its template (and so its open connections); a
//! changed or removed one closes its connections, and the tenant's clients are told that
//! their lists changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchboard_domain::UpstreamDef;
use switchboard_domain::tenancy::TenantId;

use super::{Bound, PerTenant, lock};
use crate::hub::ListChanges;
use crate::upstream::Upstream;

impl PerTenant {
    /// `tenant`'s own servers, if it has any.
    pub fn owned_by(&self, tenant: &TenantId) -> Option<Arc<[Arc<Upstream>]>> {
        if !self.any_owned.load(Ordering::Acquire) {
            return None;
        }
        self.owned.load().get(tenant).cloned()
    }

    /// Publishes every tenant's own servers (definitions checked by
    /// [`UpstreamDef::for_tenant`]), replacing the previous set.
    pub fn set_owned(&self, defs: HashMap<TenantId, Vec<UpstreamDef>>) {
        let previous = self.owned.load_full();
        let mut next: super::Owned = HashMap::with_capacity(defs.len());
        let mut changed: HashSet<TenantId> = HashSet::new();
        for (tenant, defs) in defs {
            let before = previous.get(&tenant);
            let templates: Vec<Arc<Upstream>> = defs
                .into_iter()
                .map(|def| {
                    let kept = before.and_then(|b| b.iter().find(|u| *u.def() == def));
                    match kept {
                        Some(kept) => kept.clone(),
                        None => {
                            changed.insert(tenant.clone());
                            Upstream::template(
                                self.next_index.fetch_add(1, Ordering::Relaxed),
                                def,
                                self.hub.clone(),
                                self.dirty.clone(),
                                self.shutdown.child_token(),
                            )
                        }
                    }
                })
                .collect();
            if before.is_some_and(|b| b.len() != templates.len()) {
                changed.insert(tenant.clone());
            }
            if !templates.is_empty() {
                next.insert(tenant, templates.into());
            }
        }
        let kept: HashSet<usize> = next
            .values()
            .flat_map(|t| t.iter().map(|u| u.index()))
            .collect();
        let mut retired: HashSet<usize> = HashSet::new();
        for (tenant, templates) in previous.iter() {
            for template in templates.iter().filter(|u| !kept.contains(&u.index())) {
                // A request still holding it opens no connection for it from now on.
                template.stop();
                retired.insert(template.index());
                changed.insert(tenant.clone());
            }
        }
        self.any_owned.store(!next.is_empty(), Ordering::Release);
        self.owned.store(Arc::new(next));
        if changed.is_empty() {
            return;
        }
        if !retired.is_empty() {
            let closing: Vec<_> = {
                let mut instances = lock(&self.instances);
                let keys: Vec<_> = instances
                    .keys()
                    .filter(|k| retired.contains(&k.index))
                    .cloned()
                    .collect();
                keys.into_iter()
                    .filter_map(|k| instances.remove(&k).map(|i| (k.tenant, i)))
                    .collect()
            };
            lock(&self.bindings).retain(|key, binding| {
                !retired.contains(&key.index)
                    && !matches!(&binding.bound, Bound::To(to) if retired.contains(&to.index))
            });
            for (tenant, instance) in closing {
                tracing::info!(
                    server = instance.upstream.name(),
                    %tenant,
                    "a tenant's server definition changed or was removed; closing its connection"
                );
                // The supervisor stops on its own once cancelled.
                drop(instance.close());
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        let hub = self.hub.clone();
        tokio::spawn(async move {
            let all = ListChanges {
                tools: true,
                prompts: true,
                resources: true,
            };
            for tenant in changed {
                hub.broadcast_list_changes(all, &|t: &TenantId| t == &tenant)
                    .await;
            }
        });
    }
}
