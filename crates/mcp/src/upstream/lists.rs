//! The upstream's cached lists and how they are fetched.

use std::sync::Arc;

use rmcp::model::{Prompt, Resource, ResourceTemplate, ServerCapabilities, Tool};
use rmcp::service::{Peer, RoleClient};

/// Everything an upstream lists, fetched page by page and kept whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lists {
    pub tools: Arc<Vec<Tool>>,
    pub prompts: Arc<Vec<Prompt>>,
    pub resources: Arc<Vec<Resource>>,
    pub resource_templates: Arc<Vec<ResourceTemplate>>,
}

/// Which lists to (re)fetch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
}

impl Wanted {
    pub const ALL: Wanted = Wanted {
        tools: true,
        prompts: true,
        resources: true,
    };
}

/// Fetches the lists in `wanted` that the upstream advertises, keeping the others from
/// `previous`.
pub async fn fetch(
    peer: &Peer<RoleClient>,
    capabilities: Option<&ServerCapabilities>,
    wanted: Wanted,
    previous: &Lists,
) -> Result<Lists, rmcp::ServiceError> {
    let caps = capabilities.cloned().unwrap_or_default();
    let mut lists = previous.clone();
    if wanted.tools {
        lists.tools = Arc::new(if caps.tools.is_some() {
            peer.list_all_tools().await?
        } else {
            Vec::new()
        });
    }
    if wanted.prompts {
        lists.prompts = Arc::new(if caps.prompts.is_some() {
            peer.list_all_prompts().await?
        } else {
            Vec::new()
        });
    }
    if wanted.resources {
        if caps.resources.is_some() {
            lists.resources = Arc::new(peer.list_all_resources().await?);
            lists.resource_templates = Arc::new(peer.list_all_resource_templates().await?);
        } else {
            lists.resources = Arc::default();
            lists.resource_templates = Arc::default();
        }
    }
    Ok(lists)
}
