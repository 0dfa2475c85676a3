//! The configuration file on disk: loading it, and generating Bulwark's
//! default at first start.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, Key, Provider, ProviderKind, Rule};
use crate::rotation::{RotationError, generate_secret};

/// Why the configuration file could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading, writing or inspecting the file failed.
    #[error("encryption configuration {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file holds keys but others than its owner may read it.
    #[error(
        "encryption configuration {path} holds keys but has mode {mode:04o}; make it readable \
         by its owner only (chmod 600)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file's content is refused.
    #[error("encryption configuration {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// No key could be generated for a new file.
    #[error("encryption configuration {path}: {source}")]
    Generate {
        /// The file that was to be created.
        path: PathBuf,
        /// The cause.
        #[source]
        source: RotationError,
    },
}

/// Loads and validates the configuration file at `path`.
///
/// A file that group or others may read is refused: it holds keys.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = fs::metadata(path).map_err(io_err)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(LoadError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io_err)?;
    Config::parse(&text).map_err(|source| LoadError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads the configuration at `path`, or, if there is no file there,
/// creates Bulwark's default and returns it with `created = true`.
///
/// The default encrypts `secrets` with a random 32-byte `secretbox` key
/// named `key1`, and lists `identity` last so Secrets written in plaintext
/// before encryption was enabled still read (and read as stale, so they are
/// rewritten encrypted). The file is written with mode 0600, atomically: a
/// crash leaves either no file or a complete one.
pub fn load_or_create(path: &Path) -> Result<(Config, bool), LoadError> {
    match fs::symlink_metadata(path) {
        Ok(_) => return load(path).map(|config| (config, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(LoadError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let config = default_config().map_err(|source| LoadError::Generate {
        path: path.to_path_buf(),
        source,
    })?;
    write_private(path, config.to_yaml().as_bytes()).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((config, true))
}

/// Writes `config` to `path` (mode 0600, atomically: a reader sees the old
/// file or the new one, never a mix), as `bulwark secrets rotate` does
/// between its steps.
pub fn save(path: &Path, config: &Config) -> Result<(), LoadError> {
    write_private(path, config.to_yaml().as_bytes()).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Bulwark's default configuration, with a newly generated key.
fn default_config() -> Result<Config, RotationError> {
    let key = Key {
        name: "key1".to_string(),
        secret: generate_secret()?,
    };
    Ok(Config {
        rules: vec![Rule {
            resources: vec!["secrets".to_string()],
            providers: vec![
                Provider::Keyed {
                    kind: ProviderKind::Secretbox,
                    keys: vec![key],
                },
                Provider::Identity,
            ],
        }],
    })
}

/// Writes `contents` to `path` with mode 0600 through a temporary file in the
/// same directory, renamed into place once synced.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover from a crash mid-write holds nothing anyone relies on.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
