//! The test harness: the real peers Bulwark's tests and benchmarks run
//! against, started on loopback in temporary directories and stopped by PID.
//!
//! Only tests and the `bulwark bench` subcommands use this crate; nothing in
//! a running cluster depends on it.
//!
//! ```no_run
//! let etcd = bulwark_testkit::EtcdServer::start().expect("etcd starts");
//! println!("etcd listens on {}", etcd.endpoint());
//! // stopped (SIGKILL) and its data dir removed when `etcd` is dropped
//! ```

mod etcd;
mod net;

pub use etcd::{EtcdError, EtcdServer, EtcdServerTls};
pub use net::free_loopback_port;
