//! The merged view of all upstreams: what a client lists, and where each name routes.
//!
//! A [`Catalog`] is rebuilt from the upstreams' status snapshots whenever one of them changes
//! and swapped in atomically; requests only read it. Lists are sorted by exposed name so
//! pagination is stable and cursors survive upstream changes (see `switchboard_domain::cursor`).

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{
    Prompt, PromptsCapability, Resource, ResourceTemplate, ResourcesCapability, ServerCapabilities,
    ServerConfig, Tool, ToolsCapability,
};
use switchboard_domain::{
    Cursor, CursorError, ListKind, exposed_name, exposed_uri, split_exposed_uri,
};

use crate::hub::ListChanges;
use crate::upstream::{Lists, Upstream};

/// Where an exposed name leads: which upstream, and the name it has there.
#[derive(Clone)]
pub struct Route {
    /// The upstream's index: its place in the gateway's list, or a tenant's own server's
    /// number (see [`crate::per_tenant`]).
    pub upstream: usize,
    pub name: Arc<str>,
    /// The upstream itself (a tenant's own servers are not in the gateway's list).
    pub server: Arc<Upstream>,
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.upstream == other.upstream && self.name == other.name
    }
}

impl Eq for Route {}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("server", &self.server.name())
            .field("name", &self.name)
            .finish()
    }
}

/// A sorted list plus its routing table.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    routes: HashMap<String, Route>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            routes: HashMap::new(),
        }
    }
}

impl<T: Clone + PartialEq> Listing<T> {
    /// The route of an exposed name.
    pub fn route(&self, exposed: &str) -> Option<&Route> {
        self.routes.get(exposed)
    }

    /// One page after `cursor` of the items `visible` admits, and the cursor of the next
    /// page. Cursors name the last item returned, so they stay valid whatever the filter.
    pub fn page(
        &self,
        kind: ListKind,
        cursor: Option<&str>,
        page_size: usize,
        key: impl Fn(&T) -> &str,
        visible: impl Fn(&Route) -> bool,
    ) -> Result<(Vec<T>, Option<String>), CursorError> {
        let start = match cursor {
            None => 0,
            Some(c) => {
                let after = Cursor::decode(kind, c)?.after;
                self.items
                    .partition_point(|item| key(item) <= after.as_str())
            }
        };
        let mut page = Vec::with_capacity(page_size.min(self.items.len() - start));
        let mut more = false;
        for item in &self.items[start..] {
            if !self.routes.get(key(item)).is_some_and(&visible) {
                continue;
            }
            if page.len() == page_size {
                more = true;
                break;
            }
            page.push(item.clone());
        }
        let next = more
            .then(|| page.last().map(|last| Cursor::encode(kind, key(last))))
            .flatten();
        Ok((page, next))
    }
}

/// The aggregated catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tools: Listing<Tool>,
    pub prompts: Listing<Prompt>,
    pub resources: Listing<Resource>,
    pub resource_templates: Listing<ResourceTemplate>,
    /// prefix → upstream, for resource URIs that are not listed (templates).
    prefixes: HashMap<String, Arc<Upstream>>,
    /// Upstreams exposed without prefix, in configuration order.
    unprefixed: Vec<Arc<Upstream>>,
    pub capabilities: ServerCapabilities,
    /// Bumped by the gateway on every rebuild, so derived views know when to refresh.
    pub generation: u64,
    /// What `initialize`/`server/discover` answer, built once per catalog (rmcp asks for it
    /// several times per request).
    pub info: ServerConfig,
}

/// Lists and capabilities that replace an upstream's shared ones in a session's own view.
pub type Override = (Lists, Option<ServerCapabilities>);

/// Adds `(exposed, item)` unless another upstream already took that name.
fn insert<T>(
    listing: &mut Listing<T>,
    exposed: String,
    item: T,
    route: Route,
    server: &str,
    kind: &str,
) {
    if let Some(existing) = listing.routes.get(&exposed) {
        tracing::warn!(
            server,
            kind,
            name = %exposed,
            taken_by = existing.upstream,
            "name collision between upstreams; this one is not exposed (give the upstream a prefix)"
        );
        return;
    }
    listing.routes.insert(exposed, route);
    listing.items.push(item);
}

impl Catalog {
    /// Builds the catalog from the current state of every upstream.
    pub fn build(upstreams: &[Arc<Upstream>]) -> Catalog {
        Self::build_with(upstreams, |_| None)
    }

    /// Builds a catalog where `session(index)` may replace an upstream's lists (a session's
    /// own connection can list more, e.g. tools that need the client's sampling capability).
    pub fn build_with(
        upstreams: &[Arc<Upstream>],
        session: impl Fn(usize) -> Option<Override>,
    ) -> Catalog {
        let mut catalog = Catalog::default();
        let mut caps = ServerCapabilities::default();
        let mut tools_cap = ToolsCapability::default();
        tools_cap.list_changed = Some(true);
        caps.tools = Some(tools_cap);
        for upstream in upstreams {
            let status = upstream.status();
            let (lists, capabilities) = session(upstream.index())
                .unwrap_or_else(|| (status.lists.clone(), status.capabilities.clone()));
            let def = upstream.def();
            let prefix = def.prefix.as_str();
            let server = def.name.as_str();
            let index = upstream.index();
            if prefix.is_empty() {
                catalog.unprefixed.push(upstream.clone());
            } else {
                catalog.prefixes.insert(prefix.to_owned(), upstream.clone());
            }
            let route = |name: &str| Route {
                upstream: index,
                name: Arc::from(name),
                server: upstream.clone(),
            };
            for tool in lists.tools.iter() {
                let mut exposed = tool.clone();
                exposed.name = exposed_name(prefix, &tool.name).into();
                let key = exposed.name.to_string();
                insert(
                    &mut catalog.tools,
                    key,
                    exposed,
                    route(&tool.name),
                    server,
                    "tool",
                );
            }
            for prompt in lists.prompts.iter() {
                let mut exposed = prompt.clone();
                exposed.name = exposed_name(prefix, &prompt.name);
                let key = exposed.name.clone();
                insert(
                    &mut catalog.prompts,
                    key,
                    exposed,
                    route(&prompt.name),
                    server,
                    "prompt",
                );
            }
            for resource in lists.resources.iter() {
                let mut exposed = resource.clone();
                exposed.uri = exposed_uri(prefix, &resource.uri);
                let key = exposed.uri.clone();
                insert(
                    &mut catalog.resources,
                    key,
                    exposed,
                    route(&resource.uri),
                    server,
                    "resource",
                );
            }
            for template in lists.resource_templates.iter() {
                let mut exposed = template.clone();
                exposed.uri_template = exposed_uri(prefix, &template.uri_template);
                let key = exposed.uri_template.clone();
                insert(
                    &mut catalog.resource_templates,
                    key,
                    exposed,
                    route(&template.uri_template),
                    server,
                    "resource template",
                );
            }
            if let Some(up) = &capabilities {
                merge_capabilities(&mut caps, up);
            }
        }
        catalog.tools.items.sort_by(|a, b| a.name.cmp(&b.name));
        catalog.prompts.items.sort_by(|a, b| a.name.cmp(&b.name));
        catalog.resources.items.sort_by(|a, b| a.uri.cmp(&b.uri));
        catalog
            .resource_templates
            .items
            .sort_by(|a, b| a.uri_template.cmp(&b.uri_template));
        catalog.capabilities = caps;
        catalog
    }

    /// Which lists differ between two catalogs.
    pub fn changes_from(&self, old: &Catalog) -> ListChanges {
        ListChanges {
            tools: self.tools.items != old.tools.items,
            prompts: self.prompts.items != old.prompts.items,
            resources: self.resources.items != old.resources.items
                || self.resource_templates.items != old.resource_templates.items,
        }
    }

    /// Routes a resource URI (listed, or expanded from a template) to its upstream.
    pub fn route_uri(&self, uri: &str) -> Option<Route> {
        if let Some(route) = self.resources.route(uri) {
            return Some(route.clone());
        }
        if let Some((prefix, rest)) = split_exposed_uri(uri)
            && let Some(upstream) = self.prefixes.get(prefix)
        {
            return Some(Route {
                upstream: upstream.index(),
                name: Arc::from(rest),
                server: upstream.clone(),
            });
        }
        // Unlisted URI of an unprefixed upstream: only unambiguous with exactly one.
        match self.unprefixed.as_slice() {
            [only] => Some(Route {
                upstream: only.index(),
                name: Arc::from(uri),
                server: only.clone(),
            }),
            _ => None,
        }
    }

    /// Routes a completion reference to a resource template.
    pub fn route_template(&self, exposed: &str) -> Option<Route> {
        self.resource_templates
            .route(exposed)
            .cloned()
            .or_else(|| self.route_uri(exposed))
    }
}

fn merge_capabilities(into: &mut ServerCapabilities, from: &ServerCapabilities) {
    if from.prompts.is_some() && into.prompts.is_none() {
        let mut p = PromptsCapability::default();
        p.list_changed = Some(true);
        into.prompts = Some(p);
    }
    if let Some(r) = &from.resources {
        let merged = into.resources.get_or_insert_with(|| {
            let mut c = ResourcesCapability::default();
            c.list_changed = Some(true);
            c
        });
        // Subscriptions are always offered with resources: a session's own connection may
        // support them even when the shared one says otherwise, and an upstream that does
        // not answers the forwarded request with its own error.
        let _ = r;
        merged.subscribe = Some(true);
    }
    if from.logging.is_some() && into.logging.is_none() {
        into.logging = Some(Default::default());
    }
    if from.completions.is_some() && into.completions.is_none() {
        into.completions = Some(Default::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(names: &[&str]) -> Listing<String> {
        let mut l = Listing::default();
        let def = switchboard_domain::UpstreamDef::from_raw(
            "t",
            switchboard_domain::RawUpstream {
                transport: Some("streamable-http".into()),
                url: Some("http://127.0.0.1:9/{{tenant}}".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let server = Upstream::template(0, def, Arc::default(), Arc::default(), Default::default());
        for n in names {
            l.routes.insert(
                n.to_string(),
                Route {
                    upstream: 0,
                    name: Arc::from(*n),
                    server: server.clone(),
                },
            );
            l.items.push(n.to_string());
        }
        l.items.sort();
        l
    }

    #[test]
    fn pages_walk_the_whole_list_once() {
        let l = listing(&["a", "b", "c", "d", "e"]);
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = l
                .page(
                    ListKind::Tools,
                    cursor.as_deref(),
                    2,
                    |s| s.as_str(),
                    |_| true,
                )
                .unwrap();
            seen.extend(page);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, vec!["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn cursor_survives_removal_of_the_last_item_seen() {
        let before = listing(&["a", "b", "c", "d"]);
        let (_, next) = before
            .page(ListKind::Tools, None, 2, |s| s.as_str(), |_| true)
            .unwrap();
        let after = listing(&["a", "c", "d"]);
        let (page, _) = after
            .page(
                ListKind::Tools,
                next.as_deref(),
                2,
                |s| s.as_str(),
                |_| true,
            )
            .unwrap();
        assert_eq!(page, vec!["c", "d"]);
    }

    #[test]
    fn last_page_has_no_cursor() {
        let l = listing(&["a", "b"]);
        let (page, next) = l
            .page(ListKind::Tools, None, 2, |s| s.as_str(), |_| true)
            .unwrap();
        assert_eq!(page.len(), 2);
        assert!(next.is_none());
    }

    #[test]
    fn filtered_pages_are_full_and_skip_hidden_items() {
        let l = listing(&["a", "b", "c", "d", "e", "f"]);
        let visible = |r: &Route| !matches!(&*r.name, "b" | "c" | "f");
        let (page, next) = l
            .page(ListKind::Tools, None, 2, |s| s.as_str(), visible)
            .unwrap();
        assert_eq!(page, vec!["a", "d"]);
        let (page, next) = l
            .page(ListKind::Tools, next.as_deref(), 2, |s| s.as_str(), visible)
            .unwrap();
        assert_eq!(page, vec!["e"]);
        assert!(next.is_none(), "no visible item left");
    }
}
