//! The image store: an OCI image layout on disk plus the unpacked layers.
//!
//! ```text
//! <root>/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json            one manifest descriptor per image name
//! <root>/blobs/sha256/<hex>    content-addressed blobs, verified on write
//! <root>/layers/<diff-id hex>  each layer unpacked once, shared read-only
//! <root>/tmp/                  staging; renamed into place when complete
//! ```
//!
//! Every write lands in `tmp/` first and is renamed into place only once its
//! digest is verified, so a crash or a bad input leaves the store as it was.

mod import;
pub(crate) mod oci;
mod registry;
pub(crate) mod unpack;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

pub use self::oci::RunConfig;
use self::oci::{Descriptor, ImageConfigFile, Index, MEDIA_INDEX, Manifest};
pub use self::registry::{AuthConfig, HostConfig, MirrorConfig, RegistryConfig, TlsConfig};
pub use self::unpack::UnpackError;
use crate::reference::{Reference, ReferenceError, is_sha256_hex};

/// What went wrong with an image operation.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image with this name is in the store.
    #[error("image {0} not found in the local store")]
    NotFound(String),
    /// A blob's content does not hash to the digest it was announced with.
    #[error("blob digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The digest the manifest or archive named.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// An uncompressed layer does not match the image config's `diff_id`.
    #[error("layer {layer} unpacks to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        /// The layer blob's digest.
        layer: String,
        /// The `diff_id` in the image config.
        expected: String,
        /// The digest of the uncompressed stream.
        actual: String,
    },
    /// A manifest refers to a blob the archive or store does not hold.
    #[error("blob {0} is referenced but missing")]
    MissingBlob(String),
    /// A digest string is not `sha256:<64 hex>`.
    #[error("unsupported or malformed digest {0:?} (only sha256 is supported)")]
    BadDigest(String),
    /// An index, manifest or config is not valid JSON of the expected shape.
    #[error("invalid {what}: {source}")]
    BadDocument {
        /// Which document (e.g. `manifest sha256:…`).
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The archive or index has no image for this machine's platform.
    #[error("no image for platform linux/{0} in {1}")]
    NoMatchingPlatform(String, String),
    /// An imported archive carries no name, and none was given.
    #[error("archive {0} names no image; give a name to import it as")]
    Unnamed(String),
    /// The media type of a layer or manifest is not supported.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// A registry endpoint refused or failed a request.
    #[error("registry {endpoint}: {message}")]
    Registry {
        /// The endpoint URL.
        endpoint: String,
        /// What happened (status, timeout, refused credentials, …).
        message: String,
    },
    /// No endpoint could deliver the image; each attempt's error is listed.
    #[error("pulling {reference}: {attempts}")]
    PullFailed {
        /// The image.
        reference: String,
        /// Every endpoint's failure, in the order tried.
        attempts: String,
    },
    /// The image name is not a valid reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A layer could not be unpacked (or was refused as malicious).
    #[error("layer {layer}: {source}")]
    Unpack {
        /// The layer blob's digest.
        layer: String,
        /// What was wrong.
        #[source]
        source: UnpackError,
    },
    /// Reading or writing the store failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

/// An image ready to run: its default run configuration and its unpacked
/// layers, bottom first.
#[derive(Clone, Debug)]
pub struct Image {
    /// The name it was resolved by.
    pub reference: Reference,
    /// Digest of its manifest — the image's identity.
    pub manifest_digest: String,
    /// What it runs by default.
    pub config: RunConfig,
    /// Unpacked layer directories, lowest first (read-only; shared by all containers).
    pub layers: Vec<PathBuf>,
}

/// One line of `bulwark image ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The image name.
    pub reference: Reference,
    /// Its manifest digest.
    pub manifest_digest: String,
    /// Sum of its compressed layer sizes.
    pub size: u64,
}

/// The content-addressed image store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    /// Serialises read-modify-write of `index.json` within this process.
    index_lock: Mutex<()>,
    /// Pulls in progress, by image name: later callers wait on the slot
    /// (true once a pull through it succeeded).
    inflight: Mutex<std::collections::HashMap<String, std::sync::Arc<Mutex<bool>>>>,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers", "tmp"] {
            fs::create_dir_all(root.join(dir)).map_err(io_ctx(format!(
                "creating image store directory {}",
                root.join(dir).display()
            )))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(io_ctx("writing oci-layout"))?;
        }
        Ok(ImageStore {
            root,
            index_lock: Mutex::new(()),
            inflight: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a name (`busybox`, `localhost:5000/app:v1`, …) to a runnable image.
    pub fn get(&self, name: &str) -> Result<Image, ImageError> {
        let reference = Reference::parse(name)?;
        let index = self.read_index()?;
        let desc = index
            .manifests
            .iter()
            .find(|d| ref_name(d).as_deref() == Some(reference.to_string().as_str()))
            .or_else(|| {
                // A digest-only reference matches any name with that manifest.
                let digest = reference.digest()?;
                index.manifests.iter().find(|d| d.digest == digest)
            })
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        let manifest: Manifest = self.read_json(&desc.digest, "manifest")?;
        let config: ImageConfigFile = self.read_json(&manifest.config.digest, "image config")?;
        let layers = config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| self.layer_dir(d))
            .collect::<Result<Vec<_>, _>>()?;
        for (layer, dir) in manifest.layers.iter().zip(&layers) {
            if !dir.is_dir() {
                return Err(ImageError::MissingBlob(layer.digest.clone()));
            }
        }
        Ok(Image {
            reference,
            manifest_digest: desc.digest.clone(),
            config: config.config,
            layers,
        })
    }

    /// Lists the named images.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for desc in &index.manifests {
            let Some(name) = ref_name(desc) else { continue };
            let manifest: Manifest = self.read_json(&desc.digest, "manifest")?;
            out.push(ImageSummary {
                reference: Reference::parse(&name)?,
                manifest_digest: desc.digest.clone(),
                size: manifest.layers.iter().map(|l| l.size).sum(),
            });
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Removes an image name. Blobs and layers stay until [`ImageStore::prune`].
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        let reference = Reference::parse(name)?;
        let wanted = reference.to_string();
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|d| ref_name(d).as_deref() != Some(&wanted));
        if index.manifests.len() == before {
            return Err(ImageError::NotFound(wanted));
        }
        self.write_index(&index)
    }

    /// Deletes blobs and unpacked layers no named image refers to; returns how
    /// many entries were removed. Do not run it while imports or pulls are in
    /// progress, nor while containers use images that lost their names —
    /// [`ImageStore::prune_keeping`] (what `Runtime::prune_images` calls)
    /// handles both.
    pub fn prune(&self) -> Result<usize, ImageError> {
        self.prune_keeping(&[], std::time::Duration::ZERO)
    }

    /// Like [`ImageStore::prune`], but also keeps the images whose manifest
    /// digests are in `in_use` (containers still run them), and anything
    /// written less than `grace` ago (an import or pull that has not named
    /// its image yet).
    #[tracing::instrument(level = "debug", skip(self))]
    pub fn prune_keeping(
        &self,
        in_use: &[String],
        grace: std::time::Duration,
    ) -> Result<usize, ImageError> {
        let _guard = self.lock_index()?;
        let index = self.read_index()?;
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers = std::collections::HashSet::new();
        let named = index.manifests.iter().map(|d| d.digest.clone());
        let used = in_use.iter().filter(|d| self.has_blob(d)).cloned();
        for digest in named.chain(used) {
            keep_blobs.insert(hex_of(&digest)?.to_string());
            let manifest: Manifest = self.read_json(&digest, "manifest")?;
            keep_blobs.insert(hex_of(&manifest.config.digest)?.to_string());
            for l in &manifest.layers {
                keep_blobs.insert(hex_of(&l.digest)?.to_string());
            }
            let config: ImageConfigFile =
                self.read_json(&manifest.config.digest, "image config")?;
            for d in &config.rootfs.diff_ids {
                keep_layers.insert(hex_of(d)?.to_string());
            }
        }
        let recent = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < grace)
        };
        let mut removed = 0;
        for (dir, keep) in [("blobs/sha256", &keep_blobs), ("layers", &keep_layers)] {
            let path = self.root.join(dir);
            for entry in fs::read_dir(&path).map_err(io_ctx(format!("listing {dir}")))? {
                let entry = entry.map_err(io_ctx(format!("listing {dir}")))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let p = entry.path();
                if keep.contains(&name) || recent(&p) {
                    continue;
                }
                let result = if p.is_dir() {
                    make_writable(&p);
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                result.map_err(io_ctx(format!("removing {}", p.display())))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Stores `reader`'s bytes as a blob; when `expected` is given the content
    /// must hash to it. Returns the digest and size.
    pub(crate) fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&str>,
    ) -> Result<(String, u64), ImageError> {
        if let Some(expected) = expected {
            hex_of(expected)?;
        }
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .map_err(io_ctx("creating a staging file"))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_ctx("reading blob")(e)),
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(io_ctx("writing staging file"))?;
            size += n as u64;
        }
        let actual = format!("sha256:{:x}", hasher.finalize());
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(ImageError::DigestMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(io_ctx("syncing staging file"))?;
        let dest = self.blob_path(&actual)?;
        tmp.persist(&dest)
            .map_err(|e| io_ctx(format!("storing blob {actual}"))(e.error))?;
        Ok((actual, size))
    }

    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub(crate) fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::MissingBlob(digest.to_string())
            } else {
                io_ctx(format!("reading blob {digest}"))(e)
            }
        })
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        digest: &str,
        what: &str,
    ) -> Result<T, ImageError> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| ImageError::BadDocument {
            what: format!("{what} {digest}"),
            source,
        })
    }

    pub(crate) fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("layers").join(hex_of(diff_id)?))
    }

    /// Serialises changes to the index (and pruning) within this process
    /// and with other processes on the same store (`bulwark image` commands
    /// next to a running agent), through a `flock` on `<root>/lock`.
    fn lock_index(&self) -> Result<IndexGuard<'_>, ImageError> {
        // A poisoned lock only means another thread panicked mid-update;
        // index.json itself is replaced atomically, so it is still whole.
        let local = self
            .index_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
            .map_err(io_ctx("opening the store lock"))?;
        let flock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_ctx("locking the store")(errno.into()))?;
        Ok(IndexGuard {
            _local: local,
            _flock: flock,
        })
    }

    fn read_index(&self) -> Result<Index, ImageError> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ImageError::BadDocument {
                what: "index.json".into(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(MEDIA_INDEX.into()),
                manifests: Vec::new(),
            }),
            Err(e) => Err(io_ctx("reading index.json")(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|source| ImageError::BadDocument {
            what: "index.json".into(),
            source,
        })?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .map_err(io_ctx("creating a staging file"))?;
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io_ctx("writing index.json"))?;
        tmp.persist(self.root.join("index.json"))
            .map_err(|e| io_ctx("replacing index.json")(e.error))?;
        Ok(())
    }

    /// Points `reference` at the manifest `desc` (replacing what it named before).
    pub(crate) fn tag(
        &self,
        reference: &Reference,
        mut desc: Descriptor,
    ) -> Result<(), ImageError> {
        let name = reference.to_string();
        desc.platform = None;
        desc.annotations = BTreeMap::from([(oci::ANNOTATION_REF_NAME.to_string(), name.clone())]);
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        index
            .manifests
            .retain(|d| ref_name(d).as_deref() != Some(&name));
        index.manifests.push(desc);
        self.write_index(&index)
    }
}

/// Held while the index changes; releases both locks on drop.
struct IndexGuard<'a> {
    _local: std::sync::MutexGuard<'a, ()>,
    _flock: nix::fcntl::Flock<fs::File>,
}

/// The full image name recorded on an index entry.
fn ref_name(desc: &Descriptor) -> Option<String> {
    desc.annotations.get(oci::ANNOTATION_REF_NAME).cloned()
}

/// The hex part of a `sha256:` digest, refusing anything that could be a path.
pub(crate) fn hex_of(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if is_sha256_hex(hex) => Ok(hex),
        _ => Err(ImageError::BadDigest(digest.to_string())),
    }
}

/// Unpacked layers are made read-only-ish by their own modes; give the owner
/// write access back so they can be deleted.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(meta) = fs::symlink_metadata(&d)
            && meta.is_dir()
        {
            let mode = meta.permissions().mode() | 0o700;
            let _ = fs::set_permissions(&d, fs::Permissions::from_mode(mode));
            if let Ok(entries) = fs::read_dir(&d) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
}
