//! Bulwark's container runtime: images, OCI bundles, hardened containers.
//!
//! This is the "container runtime" of the map in `DESIGN.md`; it runs beside
//! the agent and knows nothing of the Kubernetes API — the agent translates
//! pods into the plain descriptions used here.
//!
//! - [`ImageStore`] keeps images as an OCI image layout (blobs by sha256,
//!   verified on write) and unpacks each layer once, read-only, for overlayfs.
//! - [`Reference`] parses image names with Docker's conventions.
//!
//! ```no_run
//! # fn main() -> Result<(), bulwark_runtime::ImageError> {
//! let store = bulwark_runtime::ImageStore::open("/var/lib/bulwark/images")?;
//! store.import_rootfs(std::path::Path::new("rootfs.tar"), "busybox")?;
//! let image = store.get("docker.io/library/busybox:latest")?;
//! assert_eq!(image.layers.len(), 1);
//! # Ok(())
//! # }
//! ```

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

pub use cgroups::ContainerStats;
pub use config::{
    ContainerConfig, IdMapping, LogConfig, Mount, NamespaceKind, Resources, SeccompProfile,
    SecurityConfig,
};
pub use images::{
    AuthConfig, HostConfig, Image, ImageError, ImageStore, ImageSummary, MirrorConfig,
    RegistryConfig, RunConfig, TlsConfig, UnpackError,
};
pub use reference::{Reference, ReferenceError};
pub use runtime::{ContainerStatus, ExecOutput, ExitStatus, Runtime, RuntimeError, TtyExec};
pub use seccomp::SeccompError;
pub use shim::shim_main;
pub use spec::SpecError;
