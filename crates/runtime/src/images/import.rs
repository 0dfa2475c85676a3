//! Getting images into the store without a registry: plain rootfs tarballs
//! (what `docker import` takes) and OCI image layouts, as directories or tar
//! archives (what `skopeo copy … oci-archive:` writes).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::oci::{self, Descriptor, ImageConfigFile, Index, Manifest, Platform, RootFs, RunConfig};
use super::{Image, ImageError, ImageStore, hex_of, io_ctx, unpack};
use crate::reference::Reference;

impl ImageStore {
    /// Imports a tarball of a root filesystem (optionally gzip-compressed) as a
    /// single-layer image named `name`, as `docker import` does. The image has
    /// no default command; give one when running it.
    #[tracing::instrument(level = "debug", skip(self), fields(image = %name))]
    pub fn import_rootfs(&self, tarball: &Path, name: &str) -> Result<Image, ImageError> {
        let reference = Reference::parse(name)?;
        let file =
            fs::File::open(tarball).map_err(io_ctx(format!("opening {}", tarball.display())))?;
        let (layer_digest, layer_size) = self.put_blob(file, None)?;
        let gzip = is_gzip(&self.blob_path(&layer_digest)?)?;
        let media_type = if gzip {
            oci::MEDIA_LAYER_GZIP
        } else {
            oci::MEDIA_LAYER_TAR
        };
        let layer = Descriptor {
            media_type: media_type.into(),
            digest: layer_digest,
            size: layer_size,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let diff_id = self.unpack_layer(&layer, None)?;
        let config = ImageConfigFile {
            architecture: oci::host_architecture().into(),
            os: "linux".into(),
            config: RunConfig::default(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id],
            },
        };
        let config_desc = self.put_json(&config, oci::MEDIA_CONFIG)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_MANIFEST.into()),
            config: config_desc,
            layers: vec![layer],
        };
        let manifest_desc = self.put_json(&manifest, oci::MEDIA_MANIFEST)?;
        self.tag(&reference, manifest_desc)?;
        self.get(&reference.to_string())
    }

    /// Imports every image of an OCI image layout — a directory, or a tar
    /// archive of one. Images are named by their `io.containerd.image.name` or
    /// `org.opencontainers.image.ref.name` annotation; `name` overrides that
    /// (and is required when the archive carries only a bare tag). Multi-arch
    /// indexes resolve to this machine's platform.
    pub fn import_oci(&self, path: &Path, name: Option<&str>) -> Result<Vec<Image>, ImageError> {
        let index_bytes = if path.is_dir() {
            self.copy_layout_dir(path)?
        } else {
            self.copy_layout_archive(path)?
        };
        let index: Index =
            serde_json::from_slice(&index_bytes).map_err(|source| ImageError::BadDocument {
                what: format!("index.json of {}", path.display()),
                source,
            })?;
        let override_name = name.map(Reference::parse).transpose()?;
        let mut images = Vec::new();
        for desc in &index.manifests {
            let reference = match (&override_name, image_name(desc)) {
                (Some(r), _) => r.clone(),
                (None, Some(n)) => match Reference::parse(&n) {
                    Ok(r) if n.contains('/') || n.contains(':') => r,
                    // A bare tag ("latest") names no repository.
                    _ => return Err(ImageError::Unnamed(path.display().to_string())),
                },
                (None, None) => return Err(ImageError::Unnamed(path.display().to_string())),
            };
            let manifest_desc = self.resolve_platform(desc, &path.display().to_string())?;
            self.unpack_image(&manifest_desc)?;
            self.tag(&reference, manifest_desc)?;
            images.push(self.get(&reference.to_string())?);
        }
        if images.is_empty() {
            return Err(ImageError::Unnamed(path.display().to_string()));
        }
        Ok(images)
    }

    /// Imports an image archive of either kind: a `docker save` tarball
    /// (recognised by its `manifest.json`; named by its `RepoTags`) or an OCI
    /// layout (see [`ImageStore::import_oci`]). `name` overrides the names
    /// the archive carries.
    #[tracing::instrument(level = "debug", skip(self))]
    pub fn import_archive(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<Vec<Image>, ImageError> {
        if path.is_file() && archive_has(path, "manifest.json")? {
            self.import_docker_archive(path, name)
        } else {
            self.import_oci(path, name)
        }
    }

    fn import_docker_archive(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<Vec<Image>, ImageError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct SaveEntry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let ctx = || format!("reading archive {}", path.display());
        let file = fs::File::open(path).map_err(io_ctx(ctx()))?;
        let mut archive = tar::Archive::new(maybe_gunzip(BufReader::new(file))?);
        // Every file becomes a verified blob; symlinks (older Docker
        // deduplicates layers with them) are resolved afterwards.
        let mut blobs: BTreeMap<String, (String, u64)> = BTreeMap::new();
        let mut links: BTreeMap<String, String> = BTreeMap::new();
        let mut manifest_json = None;
        for entry in archive.entries().map_err(io_ctx(ctx()))? {
            let mut entry = entry.map_err(io_ctx(ctx()))?;
            let entry_path = normalize(&entry.path().map_err(io_ctx(ctx()))?.to_string_lossy());
            let kind = entry.header().entry_type();
            if entry_path == "manifest.json" {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(io_ctx(ctx()))?;
                manifest_json = Some(bytes);
            } else if kind.is_file() {
                let stored = self.put_blob(&mut entry, None)?;
                blobs.insert(entry_path, stored);
            } else if kind.is_symlink()
                && let Some(target) = entry.link_name().map_err(io_ctx(ctx()))?
            {
                let base = Path::new(&entry_path).parent().unwrap_or(Path::new(""));
                links.insert(
                    entry_path.clone(),
                    normalize(&base.join(target).to_string_lossy()),
                );
            }
        }
        let manifest_json =
            manifest_json.ok_or_else(|| ImageError::MissingBlob("manifest.json".into()))?;
        let entries: Vec<SaveEntry> =
            serde_json::from_slice(&manifest_json).map_err(|source| ImageError::BadDocument {
                what: format!("manifest.json of {}", path.display()),
                source,
            })?;
        let lookup = |p: &str| {
            let p = normalize(p);
            let p = links.get(&p).cloned().unwrap_or(p);
            blobs
                .get(&p)
                .cloned()
                .ok_or_else(|| ImageError::MissingBlob(format!("{} in {}", p, path.display())))
        };
        let override_name = name.map(Reference::parse).transpose()?;
        let mut images = Vec::new();
        for entry in entries {
            let (config_digest, config_size) = lookup(&entry.config)?;
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let (digest, size) = lookup(layer)?;
                let media_type = if is_gzip(&self.blob_path(&digest)?)? {
                    oci::MEDIA_LAYER_GZIP
                } else {
                    oci::MEDIA_LAYER_TAR
                };
                layers.push(Descriptor {
                    media_type: media_type.into(),
                    digest,
                    size,
                    platform: None,
                    annotations: BTreeMap::new(),
                });
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(oci::MEDIA_MANIFEST.into()),
                config: Descriptor {
                    media_type: oci::MEDIA_CONFIG.into(),
                    digest: config_digest,
                    size: config_size,
                    platform: None,
                    annotations: BTreeMap::new(),
                },
                layers,
            };
            let manifest_desc = self.put_json(&manifest, oci::MEDIA_MANIFEST)?;
            self.unpack_image(&manifest_desc)?;
            let names: Vec<Reference> = match &override_name {
                Some(r) => vec![r.clone()],
                None => entry
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| Reference::parse(t))
                    .collect::<Result<_, _>>()?,
            };
            if names.is_empty() {
                return Err(ImageError::Unnamed(path.display().to_string()));
            }
            for reference in names {
                self.tag(&reference, manifest_desc.clone())?;
                images.push(self.get(&reference.to_string())?);
            }
        }
        Ok(images)
    }

    /// Copies the blobs of a layout directory into the store (verifying each)
    /// and returns its index.json.
    fn copy_layout_dir(&self, dir: &Path) -> Result<Vec<u8>, ImageError> {
        let blobs = dir.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(io_ctx(format!("listing {}", blobs.display())))? {
            let entry = entry.map_err(io_ctx(format!("listing {}", blobs.display())))?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            hex_of(&digest)?;
            if self.has_blob(&digest) {
                continue;
            }
            let file = fs::File::open(entry.path())
                .map_err(io_ctx(format!("opening {}", entry.path().display())))?;
            self.put_blob(file, Some(&digest))?;
        }
        fs::read(dir.join("index.json"))
            .map_err(io_ctx(format!("reading {}/index.json", dir.display())))
    }

    /// Streams a layout tar archive into the store and returns its index.json.
    fn copy_layout_archive(&self, archive_path: &Path) -> Result<Vec<u8>, ImageError> {
        let file = fs::File::open(archive_path)
            .map_err(io_ctx(format!("opening {}", archive_path.display())))?;
        let mut archive = tar::Archive::new(maybe_gunzip(BufReader::new(file))?);
        let ctx = || format!("reading archive {}", archive_path.display());
        let mut index = None;
        for entry in archive.entries().map_err(io_ctx(ctx()))? {
            let mut entry = entry.map_err(io_ctx(ctx()))?;
            let path = entry.path().map_err(io_ctx(ctx()))?.into_owned();
            let path = path.strip_prefix("./").unwrap_or(&path).to_path_buf();
            if path == Path::new("index.json") {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(io_ctx(ctx()))?;
                index = Some(bytes);
            } else if let Ok(hex) = path.strip_prefix("blobs/sha256") {
                let digest = format!("sha256:{}", hex.to_string_lossy());
                if entry.header().entry_type().is_file() && !self.has_blob(&digest) {
                    self.put_blob(&mut entry, Some(&digest))?;
                }
            }
        }
        index.ok_or_else(|| {
            ImageError::MissingBlob(format!("{}: index.json", archive_path.display()))
        })
    }

    /// Follows an index entry down to the image manifest for this platform.
    fn resolve_platform(&self, desc: &Descriptor, source: &str) -> Result<Descriptor, ImageError> {
        let mut desc = desc.clone();
        for _ in 0..4 {
            match desc.media_type.as_str() {
                oci::MEDIA_MANIFEST | oci::DOCKER_MANIFEST => return Ok(desc),
                oci::MEDIA_INDEX | oci::DOCKER_MANIFEST_LIST => {
                    let index: Index = self.read_json(&desc.digest, "image index")?;
                    desc = index
                        .manifests
                        .into_iter()
                        .find(|d| d.platform.as_ref().is_none_or(matches_host))
                        .ok_or_else(|| {
                            ImageError::NoMatchingPlatform(
                                oci::host_architecture().into(),
                                source.into(),
                            )
                        })?;
                }
                other => return Err(ImageError::UnsupportedMediaType(other.into())),
            }
        }
        Err(ImageError::UnsupportedMediaType(
            "image index nested too deeply".into(),
        ))
    }

    /// Checks every blob of a manifest is present and unpacks its layers.
    pub(crate) fn unpack_image(&self, manifest_desc: &Descriptor) -> Result<(), ImageError> {
        let manifest: Manifest = self.read_json(&manifest_desc.digest, "manifest")?;
        let config: ImageConfigFile = self.read_json(&manifest.config.digest, "image config")?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::UnsupportedMediaType(format!(
                "image config lists {} diff_ids for {} layers",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if !self.has_blob(&layer.digest) {
                return Err(ImageError::MissingBlob(layer.digest.clone()));
            }
            self.unpack_layer(layer, Some(diff_id))?;
        }
        Ok(())
    }

    /// Unpacks a stored layer blob once into `layers/<diff-id>`; returns the diff-id.
    pub(crate) fn unpack_layer(
        &self,
        layer: &Descriptor,
        expected_diff_id: Option<&str>,
    ) -> Result<String, ImageError> {
        if let Some(diff_id) = expected_diff_id
            && self.layer_dir(diff_id)?.is_dir()
        {
            return Ok(diff_id.to_string());
        }
        match layer.media_type.as_str() {
            oci::MEDIA_LAYER_TAR
            | oci::MEDIA_LAYER_GZIP
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar" => {}
            other => return Err(ImageError::UnsupportedMediaType(other.into())),
        }
        let blob = fs::File::open(self.blob_path(&layer.digest)?)
            .map_err(io_ctx(format!("opening layer {}", layer.digest)))?;
        let mut hashing = HashingReader::new(maybe_gunzip(BufReader::new(blob))?);
        let staging = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.root.join("tmp"))
            .map_err(io_ctx("creating a staging directory"))?;
        let unpack_err = |source| ImageError::Unpack {
            layer: layer.digest.clone(),
            source,
        };
        unpack::unpack_layer(&mut hashing, staging.path()).map_err(unpack_err)?;
        // Hash the tar's trailing padding too: diff_id covers the whole stream.
        io::copy(&mut hashing, &mut io::sink())
            .map_err(io_ctx(format!("reading layer {}", layer.digest)))?;
        let actual = format!("sha256:{:x}", hashing.hasher.finalize());
        if let Some(expected) = expected_diff_id
            && expected != actual
        {
            return Err(ImageError::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: expected.into(),
                actual,
            });
        }
        let dest = self.layer_dir(&actual)?;
        let staged = staging.keep();
        if let Err(e) = fs::rename(&staged, &dest) {
            // Another import unpacked the same layer first: keep theirs.
            let _ = fs::remove_dir_all(&staged);
            if !dest.is_dir() {
                return Err(io_ctx(format!("storing layer {actual}"))(e));
            }
        }
        Ok(actual)
    }

    fn put_json<T: serde::Serialize>(
        &self,
        doc: &T,
        media_type: &str,
    ) -> Result<Descriptor, ImageError> {
        let bytes = serde_json::to_vec(doc).map_err(|source| ImageError::BadDocument {
            what: media_type.into(),
            source,
        })?;
        let (digest, size) = self.put_blob(&bytes[..], None)?;
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        })
    }
}

/// `./a/../b` → `b`: archive member names as plain relative paths.
fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Whether a (possibly gzipped) tar archive has a member named `name`.
fn archive_has(path: &Path, name: &str) -> Result<bool, ImageError> {
    let ctx = || format!("reading archive {}", path.display());
    let file = fs::File::open(path).map_err(io_ctx(ctx()))?;
    let mut archive = tar::Archive::new(maybe_gunzip(BufReader::new(file))?);
    for entry in archive.entries().map_err(io_ctx(ctx()))? {
        let entry = entry.map_err(io_ctx(ctx()))?;
        if normalize(&entry.path().map_err(io_ctx(ctx()))?.to_string_lossy()) == name {
            return Ok(true);
        }
    }
    Ok(false)
}

fn image_name(desc: &Descriptor) -> Option<String> {
    desc.annotations
        .get(oci::ANNOTATION_CONTAINERD_NAME)
        .or_else(|| desc.annotations.get(oci::ANNOTATION_REF_NAME))
        .cloned()
}

fn matches_host(p: &Platform) -> bool {
    p.os == "linux" && p.architecture == oci::host_architecture()
}

fn is_gzip(path: &Path) -> Result<bool, ImageError> {
    let mut magic = [0u8; 2];
    let mut f = fs::File::open(path).map_err(io_ctx(format!("opening {}", path.display())))?;
    let n = f
        .read(&mut magic)
        .map_err(io_ctx(format!("reading {}", path.display())))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// Decompresses gzip transparently; passes anything else through.
fn maybe_gunzip<R: BufRead + 'static>(mut reader: R) -> Result<Box<dyn Read>, ImageError> {
    let head = reader
        .fill_buf()
        .map_err(io_ctx("reading archive header"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
