//! Pod addresses from the node's pod CIDR, persisted under the state dir.
//!
//! `Ipam` decides (no IO); `IpamStore` keeps it in a JSON file written
//! atomically (temp file, fsync, rename), so an address is never handed out
//! twice across restarts of the agent.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::NetworkError;

/// The allocations of one pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ipam {
    #[serde(rename = "podCIDR")]
    cidr: Ipv4Net,
    /// The address handed out last; the search for a free one starts after
    /// it, so a just-released address is not reused at once (a stale peer
    /// connection then reaches nobody rather than the wrong pod).
    last: Option<Ipv4Addr>,
    /// Pod id → address.
    allocations: BTreeMap<String, Ipv4Addr>,
}

impl Ipam {
    pub(crate) fn new(cidr: Ipv4Net) -> Self {
        Self {
            cidr: cidr.trunc(),
            last: None,
            allocations: BTreeMap::new(),
        }
    }

    /// The gateway: the first address of the CIDR, held by the bridge.
    pub(crate) fn gateway(cidr: Ipv4Net) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(cidr.network()) + 1)
    }

    /// The pod's address: the one it already has, or the next free one.
    pub(crate) fn allocate(&mut self, pod_id: &str) -> Result<Ipv4Addr, NetworkError> {
        if let Some(ip) = self.allocations.get(pod_id) {
            return Ok(*ip);
        }
        let used: HashSet<Ipv4Addr> = self.allocations.values().copied().collect();
        let gateway = Self::gateway(self.cidr);
        let hosts: Vec<Ipv4Addr> = self.cidr.hosts().filter(|ip| *ip != gateway).collect();
        let start = self
            .last
            .and_then(|last| hosts.iter().position(|ip| *ip == last))
            .map_or(0, |i| i + 1);
        let free = (0..hosts.len())
            .map(|offset| hosts[(start + offset) % hosts.len()])
            .find(|ip| !used.contains(ip))
            .ok_or(NetworkError::Exhausted {
                cidr: self.cidr,
                in_use: used.len(),
            })?;
        self.allocations.insert(pod_id.to_owned(), free);
        self.last = Some(free);
        Ok(free)
    }

    /// Frees the pod's address; `None` when it had none.
    pub(crate) fn release(&mut self, pod_id: &str) -> Option<Ipv4Addr> {
        self.allocations.remove(pod_id)
    }

    pub(crate) fn get(&self, pod_id: &str) -> Option<Ipv4Addr> {
        self.allocations.get(pod_id).copied()
    }
}

/// `Ipam` kept in `<state_dir>/ipam.json`, for one `PodNetwork` at a time
/// (an exclusive `flock` on `<state_dir>/ipam.lock`: two agents sharing
/// the file would hand out the same address twice).
#[derive(Debug)]
pub(crate) struct IpamStore {
    path: PathBuf,
    ipam: Ipam,
    _lock: Flock<fs::File>,
}

impl IpamStore {
    const FILE: &'static str = "ipam.json";
    const LOCK: &'static str = "ipam.lock";

    /// Loads the state (or starts empty), refusing a file of another CIDR.
    pub(crate) fn open(state_dir: &Path, cidr: Ipv4Net) -> Result<Self, NetworkError> {
        let path = state_dir.join(Self::FILE);
        let state_error = |source| NetworkError::State {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(state_dir).map_err(state_error)?;
        let lock_path = state_dir.join(Self::LOCK);
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| NetworkError::State {
                path: lock_path.clone(),
                source,
            })?;
        let lock =
            Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                NetworkError::StateInUse {
                    path: lock_path,
                    source: errno.into(),
                }
            })?;
        let ipam = match fs::read(&path) {
            Ok(bytes) => {
                let ipam: Ipam = serde_json::from_slice(&bytes).map_err(|source| {
                    NetworkError::StateCorrupt {
                        path: path.clone(),
                        source,
                    }
                })?;
                if ipam.cidr != cidr.trunc() {
                    return Err(NetworkError::CidrChanged {
                        path,
                        found: ipam.cidr,
                        expected: cidr.trunc(),
                    });
                }
                ipam
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ipam::new(cidr),
            Err(e) => return Err(state_error(e)),
        };
        Ok(Self {
            path,
            ipam,
            _lock: lock,
        })
    }

    pub(crate) fn allocate(&mut self, pod_id: &str) -> Result<Ipv4Addr, NetworkError> {
        if let Some(ip) = self.ipam.get(pod_id) {
            return Ok(ip);
        }
        let mut next = self.ipam.clone();
        let ip = next.allocate(pod_id)?;
        self.save(&next)?;
        self.ipam = next;
        Ok(ip)
    }

    pub(crate) fn release(&mut self, pod_id: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        let mut next = self.ipam.clone();
        let released = next.release(pod_id);
        if released.is_some() {
            self.save(&next)?;
            self.ipam = next;
        }
        Ok(released)
    }

    pub(crate) fn get(&self, pod_id: &str) -> Option<Ipv4Addr> {
        self.ipam.get(pod_id)
    }

    /// Every pod holding an address, with it.
    pub(crate) fn allocations(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.ipam
            .allocations
            .iter()
            .map(|(pod, ip)| (pod.as_str(), *ip))
    }

    /// Forgets every allocation and removes the file.
    /// Deletes the state in `state_dir` without knowing its CIDR (cleanup
    /// of a stopped node), holding the lock while it does.
    pub(crate) fn remove_at(state_dir: &Path) -> Result<(), NetworkError> {
        let lock_path = state_dir.join(Self::LOCK);
        let lock_file = match fs::OpenOptions::new().write(true).open(&lock_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(NetworkError::State {
                    path: lock_path,
                    source,
                });
            }
        };
        let _lock =
            Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                NetworkError::StateInUse {
                    path: lock_path.clone(),
                    source: errno.into(),
                }
            })?;
        let path = state_dir.join(Self::FILE);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetworkError::State { path, source }),
        }
    }

    pub(crate) fn remove(&mut self) -> Result<(), NetworkError> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(NetworkError::State {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        self.ipam = Ipam::new(self.ipam.cidr);
        Ok(())
    }

    /// Writes `ipam` so that a crash leaves either the old or the new file.
    fn save(&self, ipam: &Ipam) -> Result<(), NetworkError> {
        let state_error = |source| NetworkError::State {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(ipam)
            .map_err(io::Error::other)
            .map_err(state_error)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = fs::File::create(&tmp).map_err(state_error)?;
        file.write_all(&bytes).map_err(state_error)?;
        file.sync_all().map_err(state_error)?;
        fs::rename(&tmp, &self.path).map_err(state_error)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(state_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_addresses_after_the_gateway_and_never_twice() {
        let mut ipam = Ipam::new(cidr("10.42.3.0/24"));
        assert_eq!(
            Ipam::gateway(cidr("10.42.3.0/24")),
            Ipv4Addr::new(10, 42, 3, 1)
        );
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(ipam.allocate("b").unwrap(), Ipv4Addr::new(10, 42, 3, 3));
        assert_eq!(
            ipam.allocate("a").unwrap(),
            Ipv4Addr::new(10, 42, 3, 2),
            "idempotent"
        );
    }

    #[test]
    fn a_released_address_is_reused_only_after_the_others() {
        let mut ipam = Ipam::new(cidr("10.0.0.0/29")); // hosts .1-.6, gateway .1
        let a = ipam.allocate("a").unwrap();
        ipam.allocate("b").unwrap();
        assert_eq!(ipam.release("a"), Some(a));
        assert_eq!(ipam.allocate("c").unwrap(), Ipv4Addr::new(10, 0, 0, 4));
        for pod in ["d", "e", "f"] {
            ipam.allocate(pod).unwrap();
        }
        assert_eq!(
            ipam.get("f"),
            Some(a),
            "wrapped around to the freed address"
        );
    }

    #[test]
    fn exhaustion_names_the_cidr() {
        let mut ipam = Ipam::new(cidr("10.0.0.0/30")); // .1 gateway, .2 the only pod
        ipam.allocate("a").unwrap();
        let err = ipam.allocate("b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free address left in pod CIDR 10.0.0.0/30: 1 addresses are in use"
        );
        assert_eq!(ipam.get("b"), None);
    }

    #[test]
    fn the_store_survives_reopening_and_refuses_another_cidr() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = IpamStore::open(dir.path(), cidr("10.42.3.0/24")).unwrap();
        let a = store.allocate("a").unwrap();
        let b = store.allocate("b").unwrap();
        store.release("a").unwrap();
        drop(store);

        let mut store = IpamStore::open(dir.path(), cidr("10.42.3.0/24")).unwrap();
        assert_eq!(store.allocate("b").unwrap(), b);
        let c = store.allocate("c").unwrap();
        assert_ne!(c, a, "the last position is persisted too");
        assert_ne!(c, b);
        drop(store);

        let err = IpamStore::open(dir.path(), cidr("10.42.4.0/24")).unwrap_err();
        assert!(matches!(err, NetworkError::CidrChanged { .. }), "{err}");
    }

    #[test]
    fn two_stores_cannot_share_a_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = IpamStore::open(dir.path(), cidr("10.42.3.0/24")).unwrap();
        let err = IpamStore::open(dir.path(), cidr("10.42.3.0/24")).unwrap_err();
        assert!(matches!(err, NetworkError::StateInUse { .. }), "{err}");
        assert!(
            err.to_string().contains("is held by another PodNetwork"),
            "{err}"
        );
        drop(first);
        IpamStore::open(dir.path(), cidr("10.42.3.0/24")).unwrap();
    }

    #[test]
    fn a_damaged_state_file_is_refused_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ipam.json"), b"{not json").unwrap();
        let err = IpamStore::open(dir.path(), cidr("10.42.3.0/24")).unwrap_err();
        assert!(err.to_string().contains("is damaged"), "{err}");
    }
}
