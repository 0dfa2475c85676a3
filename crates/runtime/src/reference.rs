//! Image references with Docker's normalisation rules.
//!
//! `busybox` means `docker.io/library/busybox:latest`; a first path component
//! that contains a `.` or a `:`, or is `localhost`, names a registry host;
//! `@sha256:…` pins a digest (a digest alone implies no tag).

use std::fmt;
use std::str::FromStr;

/// The registry that a reference without a host is looked up in.
pub(crate) const DEFAULT_REGISTRY: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";

/// A fully normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The reference was empty.
    #[error("invalid reference format: empty reference")]
    Empty,
    /// The repository path holds characters Docker does not accept (uppercase, spaces, …).
    #[error(
        "invalid reference format: repository name {0:?} must be lowercase letters, digits and separators (. _ __ - /)"
    )]
    InvalidRepository(String),
    /// The tag is not `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("invalid reference format: tag {0:?} is not valid")]
    InvalidTag(String),
    /// The digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid reference format: digest {0:?} is not sha256:<64 hex digits>")]
    InvalidDigest(String),
}

impl Reference {
    /// Parses and normalises `s` the way `docker pull` does.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest)?;
                (name, Some(digest.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/', so that
        // `localhost:5000/busybox` keeps its port.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                validate_tag(tag)?;
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository)?;
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn validate_repository(repo: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::InvalidRepository(repo.to_string());
    if repo.is_empty() || repo.len() > 255 {
        return Err(invalid());
    }
    for component in repo.split('/') {
        // component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(invalid());
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "."
                || sep == "_"
                || sep == "__"
                || (!sep.is_empty() && sep.bytes().all(|b| b == b'-'));
            if !ok {
                return Err(invalid());
            }
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag(tag.to_string()))
    }
}

pub(crate) fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if is_sha256_hex(hex) => Ok(()),
        _ => Err(ReferenceError::InvalidDigest(digest.to_string())),
    }
}

pub(crate) fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(input: &str, expect: Expect) {
        let actual = match Reference::parse(input) {
            Ok(r) => format!(
                "{r}  registry={} repo={} tag={:?} digest={:?}",
                r.registry(),
                r.repository(),
                r.tag(),
                r.digest().map(|d| &d[..15])
            ),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&actual);
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn official_images_get_library_and_latest() {
        check(
            "busybox",
            expect![[
                r#"docker.io/library/busybox:latest  registry=docker.io repo=library/busybox tag=Some("latest") digest=None"#
            ]],
        );
        check(
            "nginx:1.27-alpine",
            expect![[
                r#"docker.io/library/nginx:1.27-alpine  registry=docker.io repo=library/nginx tag=Some("1.27-alpine") digest=None"#
            ]],
        );
        check(
            "library/nginx",
            expect![[
                r#"docker.io/library/nginx:latest  registry=docker.io repo=library/nginx tag=Some("latest") digest=None"#
            ]],
        );
        check(
            "docker.io/busybox",
            expect![[
                r#"docker.io/library/busybox:latest  registry=docker.io repo=library/busybox tag=Some("latest") digest=None"#
            ]],
        );
        check(
            "index.docker.io/busybox:1",
            expect![[
                r#"docker.io/library/busybox:1  registry=docker.io repo=library/busybox tag=Some("1") digest=None"#
            ]],
        );
    }

    #[test]
    fn user_repositories_and_registries() {
        check(
            "bitnami/redis",
            expect![[
                r#"docker.io/bitnami/redis:latest  registry=docker.io repo=bitnami/redis tag=Some("latest") digest=None"#
            ]],
        );
        check(
            "localhost/busybox",
            expect![[
                r#"localhost/busybox:latest  registry=localhost repo=busybox tag=Some("latest") digest=None"#
            ]],
        );
        check(
            "localhost:5000/busybox",
            expect![[
                r#"localhost:5000/busybox:latest  registry=localhost:5000 repo=busybox tag=Some("latest") digest=None"#
            ]],
        );
        check(
            "127.0.0.1:5000/a/b/c:v1.2",
            expect![[
                r#"127.0.0.1:5000/a/b/c:v1.2  registry=127.0.0.1:5000 repo=a/b/c tag=Some("v1.2") digest=None"#
            ]],
        );
        check(
            "registry.k8s.io/pause:3.10",
            expect![[
                r#"registry.k8s.io/pause:3.10  registry=registry.k8s.io repo=pause tag=Some("3.10") digest=None"#
            ]],
        );
    }

    #[test]
    fn digests() {
        check(
            &format!("busybox@{D}"),
            expect![[
                r#"docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  registry=docker.io repo=library/busybox tag=None digest=Some("sha256:01234567")"#
            ]],
        );
        check(
            &format!("localhost:5000/busybox:1.36@{D}"),
            expect![[
                r#"localhost:5000/busybox:1.36@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  registry=localhost:5000 repo=busybox tag=Some("1.36") digest=Some("sha256:01234567")"#
            ]],
        );
    }

    #[test]
    fn invalid_references() {
        check(
            "",
            expect![[r#"error: invalid reference format: empty reference"#]],
        );
        check(
            "BusyBox",
            expect![[
                r#"error: invalid reference format: repository name "library/BusyBox" must be lowercase letters, digits and separators (. _ __ - /)"#
            ]],
        );
        check(
            "busybox:",
            expect![[r#"error: invalid reference format: tag "" is not valid"#]],
        );
        check(
            "busybox:-x",
            expect![[r#"error: invalid reference format: tag "-x" is not valid"#]],
        );
        check(
            "busybox@sha256:abc",
            expect![[
                r#"error: invalid reference format: digest "sha256:abc" is not sha256:<64 hex digits>"#
            ]],
        );
        check(
            "a//b",
            expect![[
                r#"error: invalid reference format: repository name "a//b" must be lowercase letters, digits and separators (. _ __ - /)"#
            ]],
        );
        check(
            "foo/-bar",
            expect![[
                r#"error: invalid reference format: repository name "foo/-bar" must be lowercase letters, digits and separators (. _ __ - /)"#
            ]],
        );
    }
}
