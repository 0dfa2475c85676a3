//! What every Bulwark component that talks to the Kubernetes API needs, so
//! the scheduler, the controllers and the agent do it the same way:
//!
//! - [`ClusterAccess`]: a [`kube::Client`] for an [`Identity`], authenticated
//!   by a client certificate the cluster CA signs for it. Components run in
//!   the server's process but still go through HTTPS and the authorizer
//!   (DESIGN.md, invariant 1), each as the least-privileged identity
//!   upstream gives it.
//! - [`leader`]: leader election through coordination.k8s.io/v1 Leases, so
//!   several servers on one etcd run one scheduler and one controller manager.
//! - [`events`]: a core/v1 Event recorder that aggregates repeats as
//!   upstream's does (`count`, `lastTimestamp`).
//! - [`Clock`]: time, injectable for tests of schedules and timeouts.

mod access;
pub mod events;
pub mod leader;

pub use access::{AccessError, ClusterAccess, Identity, IssueCertificate};

/// A source of the current time. Controllers read time only through this, so
/// tests of schedules (CronJob) and deadlines can move it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> jiff::Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}
