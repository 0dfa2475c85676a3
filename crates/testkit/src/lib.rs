//! The test harness: the real peers Bulwark's tests and benchmarks run
//! against, started on loopback in temporary directories and stopped by PID;
//! kwok-style fake nodes; and (feature `cluster`) an API server in-process.
//!
//! Only tests and the `bulwark bench` / `bulwark fake-nodes` subcommands use
//! this crate; nothing in a running cluster depends on it.
//!
//! ```no_run
//! let etcd = bulwark_testkit::EtcdServer::start().expect("etcd starts");
//! println!("etcd listens on {}", etcd.endpoint());
//! // stopped (SIGKILL) and its data dir removed when `etcd` is dropped
//! ```

mod busybox;
#[cfg(feature = "cluster")]
mod cluster;
mod etcd;
mod fake_nodes;
mod net;
mod wait;

pub use busybox::{busybox_rootfs_tar, is_root};
#[cfg(feature = "cluster")]
pub use cluster::TestCluster;
pub use etcd::{EtcdError, EtcdServer, EtcdServerTls};
pub use fake_nodes::{FakeNodeConfig, FakeNodes};
pub use net::free_loopback_port;
pub use wait::{WaitTimedOut, wait_for};
