//! Bulwark's container runtime: images, OCI bundles, hardened containers.
//!
//! This is the "container runtime" of the map in `DESIGN.md`; it runs beside
//! the agent and knows nothing of the Kubernetes API — the agent translates
//! pods into the plain descriptions used here ([`ContainerConfig`]).
//!
//! - [`ImageStore`] keeps images as an OCI image layout (blobs by sha256,
//!   verified on write), pulls them from registries ([`RegistryConfig`],
//!   k3s-style mirrors) or imports archives, and unpacks each layer once,
//!   read-only, for overlayfs. [`Reference`] parses names the Docker way.
//! - [`Runtime`] turns a [`ContainerConfig`] into an OCI runtime spec
//!   (hardened by default: RuntimeDefault seccomp, containerd's capability
//!   set, no_new_privs, masked and read-only `/proc` paths) and runs it
//!   through a per-container shim (`bulwark-runtime-shim`, whose `main` is
//!   [`shim_main`]) with the built-in libcontainer executor or a
//!   runc-compatible binary. The shim owns the container's stdio, writes its
//!   CRI log and records its exit; all state is files, so a restarted agent
//!   re-adopts running containers.
//!
//! Inside: `images` (store, import, registry, unpack), `reference`, `config`
//! (the description types), `spec` (description → OCI spec), `seccomp`
//! (profile and BPF), `rootfs` (overlay, in-root lookups), `runtime`
//! (container life cycle), `shim` (the per-container process), `logs` (CRI
//! format and rotation), `cgroups` (the kernel trait, pod limits, stats),
//! `tty` (console sockets).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bulwark_runtime::{ContainerConfig, ImageStore, Runtime};
//!
//! let images = Arc::new(ImageStore::open("/var/lib/bulwark/images")?);
//! images.import_rootfs(std::path::Path::new("rootfs.tar"), "busybox")?;
//! let runtime = Runtime::new("/var/lib/bulwark/runtime", images, "/usr/lib/bulwark/bulwark-runtime-shim")?;
//! let config = ContainerConfig {
//!     id: "hello".into(),
//!     image: "busybox".into(),
//!     command: Some(vec!["echo".into(), "hello".into()]),
//!     ..ContainerConfig::default()
//! };
//! runtime.create(&config)?;
//! runtime.start("hello")?;
//! let exit = runtime.wait("hello", Duration::from_secs(10))?;
//! assert_eq!(exit.code, 0);
//! runtime.remove("hello")?;
//! # Ok(())
//! # }
//! ```

mod attach;
mod cgroups;
mod config;
mod images;
mod logs;
mod reference;
mod rootfs;
mod runtime;
mod seccomp;
mod shim;
mod spec;
mod tty;
mod validate;

pub use attach::{Attach, OutputStream};
pub use cgroups::ContainerStats;
pub use config::{
    ContainerConfig, IdMapping, LogConfig, Mount, NamespaceKind, Resources, SeccompProfile,
    SecurityConfig,
};
pub use images::{
    AuthConfig, HostConfig, Image, ImageError, ImageStore, ImageSummary, MirrorConfig,
    RegistryConfig, RunConfig, TlsConfig, UnpackError,
};
pub use logs::LogEntry;
pub use reference::{Reference, ReferenceError};
pub use runtime::{
    ContainerStatus, ExecOutput, ExitStatus, Runtime, RuntimeError, StreamingExec, TtyExec,
};
pub use seccomp::SeccompError;
pub use shim::shim_main;
pub use spec::SpecError;

#[cfg(test)]
mod tests {
    /// The agent shares one runtime and one store across its tasks.
    #[test]
    fn handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Runtime>();
        assert_send_sync::<crate::ImageStore>();
    }
}
