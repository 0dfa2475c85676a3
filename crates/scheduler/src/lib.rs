//! The pod scheduler: places pods without a node onto nodes, as upstream's
//! kube-scheduler does with its default plugins.
//!
//! Two layers. The placement core does no IO: a [`Snapshot`] of nodes
//! with their pods and summed requests, kept current incrementally, and a
//! [`Scheduler`] that filters a sample of the nodes (upstream's
//! `percentageOfNodesToScore`), scores the feasible ones and picks the
//! best — or returns a [`FitError`] whose text is upstream's
//! (`0/3 nodes are available: 3 Insufficient cpu.`) — and, for a pod of
//! higher priority, finds a [`Preemption`]. The IO layer, [`run`], watches
//! the API server, queues pods with backoff, binds through
//! `pods/binding`, and reports failures as a `PodScheduled=False`
//! condition and a `FailedScheduling` event.
//!
//! ```
//! use bulwark_scheduler::{Scheduler, Snapshot};
//! use k8s_openapi::api::core::v1::{Node, Pod};
//!
//! let node: Node = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "n1"},
//!     "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}
//! })).unwrap();
//! let pod: Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "p", "namespace": "default"},
//!     "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}
//! })).unwrap();
//! let mut snapshot = Snapshot::new();
//! snapshot.set_node(node);
//! let err = Scheduler::new().schedule(&snapshot, &pod).unwrap_err();
//! assert_eq!(err.to_string(), "0/1 nodes are available: 1 Insufficient cpu.");
//! ```

mod events;
mod filter;
mod interpod;
mod preempt;
mod queue;
mod resources;
mod run;
mod schedule;
mod score;
mod selectors;
mod snapshot;
mod spread;
mod workloads;

pub use preempt::Preemption;
pub use run::{SchedulerOptions, run};
pub use schedule::{FitError, ScheduleError, Scheduler};
pub use snapshot::Snapshot;
