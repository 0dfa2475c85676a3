//! Doing things inside a network namespace: a scoped thread joins it with
//! `setns(2)` and runs the closure. Sockets (netlink, TCP) made there stay
//! in that namespace wherever they are used afterwards, and a child process
//! spawned there starts in it.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::NetworkError;

/// An open network namespace file (`/run/netns/x`, `/proc/<pid>/ns/net`).
#[derive(Debug)]
pub(crate) struct Netns {
    path: PathBuf,
    file: File,
}

impl Netns {
    /// Opens `path` and checks that it is a network namespace.
    pub(crate) fn open(path: &Path) -> Result<Self, NetworkError> {
        let file = File::open(path).map_err(|source| NetworkError::Netns {
            path: path.to_owned(),
            source,
        })?;
        let netns = Self {
            path: path.to_owned(),
            file,
        };
        netns.run(|| ())?;
        Ok(netns)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Runs `f` on a thread inside this namespace and returns its result.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetworkError> {
        let joined = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(&self.file, CloneFlags::CLONE_NEWNET)?;
                    Ok::<T, nix::errno::Errno>(f())
                })
                .join()
        });
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(errno)) => Err(NetworkError::Netns {
                path: self.path.clone(),
                source: std::io::Error::other(format!(
                    "not a network namespace, or cannot enter it: {errno}"
                )),
            }),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Runs `f` inside `netns`, or on the calling thread when it is `None`.
pub(crate) fn run_in<T: Send>(
    netns: Option<&Netns>,
    f: impl FnOnce() -> T + Send,
) -> Result<T, NetworkError> {
    match netns {
        Some(netns) => netns.run(f),
        None => Ok(f()),
    }
}

/// A netlink (rtnetlink) handle whose socket lives in `netns`; its
/// connection runs as a task on the current tokio runtime until the last
/// handle is dropped.
pub(crate) fn netlink(netns: Option<&Netns>) -> Result<rtnetlink::Handle, NetworkError> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| NetworkError::io("opening a netlink socket")(std::io::Error::other(e)))?;
    let (connection, handle, _) = run_in(netns, || {
        let _guard = runtime.enter();
        rtnetlink::new_connection()
    })?
    .map_err(NetworkError::io("opening a netlink socket"))?;
    tokio::spawn(connection);
    Ok(handle)
}
