//! The one error type of the pod network.

use std::io;
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// What went wrong while setting up or changing the pod network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A value of `NetworkConfig` (or a peer) cannot be used.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// A network namespace path could not be opened or entered.
    #[error("network namespace {}: {source}", path.display())]
    Netns {
        /// The path given (for a pod: `/run/bulwark/netns/<id>`, `/proc/<pid>/ns/net`).
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: io::Error,
    },
    /// Every address of the node's pod CIDR is in use.
    #[error("no free address left in pod CIDR {cidr}: {in_use} addresses are in use")]
    Exhausted {
        /// The node's pod CIDR.
        cidr: Ipv4Net,
        /// How many pods hold an address.
        in_use: usize,
    },
    /// The IPAM state file could not be read or written.
    #[error("IPAM state {}: {source}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// Another `PodNetwork` (in this process or another) uses the state dir.
    #[error("IPAM state lock {} is held by another PodNetwork (is another agent running?): {source}", path.display())]
    StateInUse {
        /// The lock file.
        path: PathBuf,
        /// The `flock` error.
        #[source]
        source: io::Error,
    },
    /// The IPAM state file exists but is not valid.
    #[error("IPAM state {} is damaged (move it away to start over): {source}", path.display())]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The IPAM state was written for another pod CIDR.
    #[error(
        "IPAM state {} holds addresses of pod CIDR {found}, not {expected}; \
         detach its pods (or call cleanup) before changing the node's pod CIDR",
        path.display()
    )]
    CidrChanged {
        /// The state file.
        path: PathBuf,
        /// The CIDR in the file.
        found: Ipv4Net,
        /// The configured CIDR.
        expected: Ipv4Net,
    },
    /// A netlink request failed.
    #[error("{action}: {source}")]
    Netlink {
        /// What was being done, e.g. `creating bridge bulwark0`.
        action: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The `nft` tool is not installed.
    #[error(
        "the nft tool was not found (looked in PATH, /usr/sbin and /sbin); install the Debian package nftables"
    )]
    NftMissing,
    /// `nft` refused the ruleset.
    #[error("nft -f - failed ({status}): {stderr}")]
    Nft {
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },
    /// Another IO operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The IO error.
        #[source]
        source: io::Error,
    },
}

impl NetworkError {
    pub(crate) fn netlink(action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let action = action.into();
        move |source| Self::Netlink { action, source }
    }

    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}

/// The errno a netlink error carries, if any (positive, as in `libc`).
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    }
}
