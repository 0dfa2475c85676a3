//! `bulwark image …`: the node's image store (the runtime's
//! `ImageStore`) from the command line, for air-gapped imports and checks.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bulwark_runtime::{ImageStore, RegistryConfig};

/// What `bulwark image` can do.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ImageCommand {
    /// Pull an image from its registry (or the mirrors in --registries).
    Pull {
        /// Image reference, e.g. `busybox` or `registry.local:5000/app:1.0`.
        name: String,
        /// A registries.yaml (mirrors, credentials, TLS per registry).
        #[arg(long, default_value = "/etc/bulwark/registries.yaml")]
        registries: PathBuf,
    },
    /// Import an image archive (`docker save`, OCI layout or archive), or a
    /// plain root filesystem tarball with --rootfs.
    Import {
        /// The archive, tarball or OCI layout directory.
        path: PathBuf,
        /// Name the image (required with --rootfs).
        #[arg(long)]
        name: Option<String>,
        /// The file is a root filesystem tarball (as `docker import` takes).
        #[arg(long)]
        rootfs: bool,
    },
    /// List stored images.
    Ls,
    /// Remove an image's name (its layers go with `prune`).
    Rm {
        /// Image reference.
        name: String,
    },
    /// Remove unused layers and blobs.
    Prune,
}

/// Runs one image command against the store under `dir`.
pub(crate) fn run(dir: &Path, command: ImageCommand) -> anyhow::Result<()> {
    let store = ImageStore::open(dir)
        .with_context(|| format!("opening the image store {}", dir.display()))?;
    match command {
        ImageCommand::Pull { name, registries } => {
            let config = if registries.exists() {
                RegistryConfig::load(&registries)?
            } else {
                RegistryConfig::default()
            };
            let image = store.pull(&name, &config)?;
            println!("{} {}", image.reference, image.manifest_digest);
        }
        ImageCommand::Import { path, name, rootfs } => {
            if rootfs {
                let name = name.context("--rootfs needs --name")?;
                let image = store.import_rootfs(&path, &name)?;
                println!("{} {}", image.reference, image.manifest_digest);
            } else {
                for image in store.import_archive(&path, name.as_deref())? {
                    println!("{} {}", image.reference, image.manifest_digest);
                }
            }
        }
        ImageCommand::Ls => {
            println!("{:<60} {:<20} {:>10}", "IMAGE", "DIGEST", "SIZE");
            for image in store.list()? {
                let digest = image.manifest_digest.trim_start_matches("sha256:");
                println!(
                    "{:<60} {:<20} {:>10}",
                    image.reference.to_string(),
                    &digest[..digest.len().min(12)],
                    human_size(image.size)
                );
            }
        }
        ImageCommand::Rm { name } => {
            store.remove(&name)?;
            println!("removed {name}");
        }
        ImageCommand::Prune => {
            let removed = store.prune()?;
            println!("removed {removed} unused blobs and layers");
        }
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}
