//! Pod sandboxes without an infrastructure container: the namespaces a pod's
//! containers share (network, UTS, IPC) are created by a short-lived thread
//! and pinned by bind-mounting their `nsfs` files into the pod's directory,
//! as CRI-O's `pinns` does. Containers join them by path; the pins outlive
//! the agent, so a restarted agent finds the same namespaces.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use bulwark_runtime::NamespaceKind;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Which namespaces a pod gets of its own (the host's are shared otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SandboxSpec {
    /// Own network namespace (not `hostNetwork`).
    pub(crate) network: bool,
    /// Own IPC namespace (not `hostIPC`).
    pub(crate) ipc: bool,
    /// Own UTS namespace (not `hostNetwork`: such pods see the node's name).
    pub(crate) uts: bool,
}

/// The pinned namespaces of one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sandbox {
    /// Namespaces the pod's containers join, by pin path.
    pub(crate) namespaces: Vec<(NamespaceKind, PathBuf)>,
}

const KINDS: [(NamespaceKind, &str, CloneFlags); 3] = [
    (NamespaceKind::Network, "net", CloneFlags::CLONE_NEWNET),
    (NamespaceKind::Uts, "uts", CloneFlags::CLONE_NEWUTS),
    (NamespaceKind::Ipc, "ipc", CloneFlags::CLONE_NEWIPC),
];

fn wanted(spec: SandboxSpec, kind: NamespaceKind) -> bool {
    match kind {
        NamespaceKind::Network => spec.network,
        NamespaceKind::Uts => spec.uts,
        NamespaceKind::Ipc => spec.ipc,
        NamespaceKind::Pid => false,
    }
}

/// Creates (or finds, after a restart) the pod's pinned namespaces under
/// `dir`, with `hostname` in its UTS namespace and loopback up in its
/// network namespace.
pub(crate) fn ensure(dir: &Path, spec: SandboxSpec, hostname: &str) -> io::Result<Sandbox> {
    fs::create_dir_all(dir)?;
    let pins: Vec<(NamespaceKind, PathBuf, CloneFlags)> = KINDS
        .iter()
        .filter(|(kind, _, _)| wanted(spec, *kind))
        .map(|(kind, name, flag)| (*kind, dir.join(name), *flag))
        .collect();
    let missing: Vec<_> = pins
        .iter()
        .filter(|(_, path, _)| !is_pinned(dir, path))
        .cloned()
        .collect();
    if !missing.is_empty() {
        // A partial sandbox (a crash between two pins) is rebuilt whole:
        // namespaces of one pod must be created together.
        remove(dir)?;
        fs::create_dir_all(dir)?;
        let hostname = hostname.to_owned();
        let pins = pins.clone();
        std::thread::Builder::new()
            .name("bulwark-pinns".into())
            .spawn(move || pin(&pins, &hostname))
            .map_err(io::Error::other)?
            .join()
            .map_err(|_| io::Error::other("the namespace-pinning thread panicked"))??;
    }
    Ok(Sandbox {
        namespaces: pins
            .into_iter()
            .map(|(kind, path, _)| (kind, path))
            .collect(),
    })
}

/// Runs on its own thread, which it leaves in the new namespaces; it ends
/// right after, so no other work ever runs there.
fn pin(pins: &[(NamespaceKind, PathBuf, CloneFlags)], hostname: &str) -> io::Result<()> {
    let flags = pins
        .iter()
        .fold(CloneFlags::empty(), |flags, (_, _, flag)| flags | *flag);
    nix::sched::unshare(flags).map_err(io::Error::from)?;
    if flags.contains(CloneFlags::CLONE_NEWUTS) {
        nix::unistd::sethostname(hostname).map_err(io::Error::from)?;
    }
    if flags.contains(CloneFlags::CLONE_NEWNET) {
        loopback_up()?;
    }
    for (kind, path, _) in pins {
        let name = KINDS
            .iter()
            .find(|(k, _, _)| k == kind)
            .map(|(_, name, _)| *name)
            .unwrap_or("net");
        fs::File::create(path)?;
        nix::mount::mount(
            Some(Path::new(&format!("/proc/thread-self/ns/{name}"))),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|err| io::Error::other(format!("pinning {}: {err}", path.display())))?;
    }
    Ok(())
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(connection);
        // Loopback is always index 1 in a new network namespace.
        let result = handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(1).up().build())
            .execute()
            .await
            .map_err(|err| io::Error::other(format!("bringing up loopback: {err}")));
        task.abort();
        result
    })
}

/// Whether `path` is a namespace pinned over a file in `dir` (a bind mount
/// of an `nsfs` file lives on another device than the directory).
fn is_pinned(dir: &Path, path: &Path) -> bool {
    match (fs::metadata(dir), fs::metadata(path)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    }
}

/// Unpins and deletes the pod's namespaces. Namespaces end when the last
/// process in them does.
pub(crate) fn remove(dir: &Path) -> io::Result<()> {
    for (_, name, _) in KINDS {
        let path = dir.join(name);
        if is_pinned(dir, &path) {
            nix::mount::umount2(&path, MntFlags::MNT_DETACH).map_err(io::Error::from)?;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_pod_does_not_share_is_created() {
        let spec = SandboxSpec {
            network: false,
            ipc: true,
            uts: false,
        };
        assert!(!wanted(spec, NamespaceKind::Network));
        assert!(wanted(spec, NamespaceKind::Ipc));
        assert!(!wanted(spec, NamespaceKind::Uts));
        assert!(!wanted(spec, NamespaceKind::Pid));
    }
}
