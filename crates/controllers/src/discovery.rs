//! The resources the server serves, for the controllers that handle every
//! kind (namespace deletion, garbage collection).

use kube::core::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::discovery::Discovery;

/// A served resource (its preferred version) and what it supports.
#[derive(Clone, Debug)]
pub(crate) struct Served {
    pub(crate) resource: ApiResource,
    pub(crate) namespaced: bool,
    capabilities: ApiCapabilities,
}

impl Served {
    pub(crate) fn supports(&self, verb: &str) -> bool {
        self.capabilities.supports_operation(verb)
    }
}

/// Every resource in its group's preferred version.
pub(crate) async fn served(client: &kube::Client) -> Result<Vec<Served>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            out.push(Served {
                namespaced: capabilities.scope == Scope::Namespaced,
                resource,
                capabilities,
            });
        }
    }
    Ok(out)
}
