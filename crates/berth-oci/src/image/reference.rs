//! Image references as a user writes them (`busybox`,
//! `127.0.0.1:5000/berth/busybox:1.35`, `localhost:5000/a/b@sha256:…`),
//! read into the registry, repository, tag and digest that a pull needs,
//! with the grammar of the distribution spec: a repository of lower-case
//! path components, a tag of at most 128 word characters, a name of at
//! most 255 characters.
//!
//! The registry is the first path component when it looks like a host (it
//! holds a `.` or a `:`, or is `localhost`); otherwise it is `docker.io`,
//! where a name of one component is an official image under `library/`. A
//! reference with neither tag nor digest means the tag `latest`.

use std::fmt;
use std::str::FromStr;

use super::digest::{Digest, DigestError};

/// The registry a name without one is pulled from.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";

/// The longest name (registry and repository) the distribution spec allows.
pub const MAX_NAME: usize = 255;

/// The longest tag the distribution spec allows.
const MAX_TAG: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("an image reference is needed, and it is empty")]
    Empty,
    #[error("image reference {reference:?}: its name has {len} characters, more than the {MAX_NAME} allowed")]
    TooLong { reference: String, len: usize },
    #[error("image reference {reference:?}: a repository name must be lower case")]
    Uppercase { reference: String },
    #[error("image reference {reference:?}: {reason}")]
    BadRepository { reference: String, reason: &'static str },
    #[error("image reference {reference:?}: {registry:?} is not a registry host[:port]")]
    BadRegistry { reference: String, registry: String },
    #[error(
        "image reference {reference:?}: tag {tag:?} is not 1 to 128 letters, digits, `_`, `.` or `-` \
         (not starting with `.` or `-`)"
    )]
    BadTag { reference: String, tag: String },
    #[error("image reference {reference:?}: {source}")]
    BadDigest {
        reference: String,
        #[source]
        source: DigestError,
    },
}

/// An image reference, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let reference = || text.to_owned();
        let (named, digest) = match text.split_once('@') {
            Some((named, digest)) => {
                let digest = Digest::parse(digest)
                    .map_err(|source| ReferenceError::BadDigest { reference: reference(), source })?;
                (named, Some(digest))
            }
            None => (text, None),
        };
        let last_slash = named.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match named[last_slash..].rfind(':') {
            Some(colon) => (&named[..last_slash + colon], Some(&named[last_slash + colon + 1..])),
            None => (named, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::BadRepository { reference: reference(), reason: "it names no repository" });
        }
        if name.len() > MAX_NAME {
            return Err(ReferenceError::TooLong { reference: reference(), len: name.len() });
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
            _ => (DEFAULT_REGISTRY, name),
        };
        if !is_host(registry) {
            return Err(ReferenceError::BadRegistry { reference: reference(), registry: registry.to_owned() });
        }
        let registry = if registry == "index.docker.io" { DEFAULT_REGISTRY } else { registry };
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase { reference: reference() });
        }
        for component in repository.split('/') {
            check_component(component)
                .map_err(|reason| ReferenceError::BadRepository { reference: reference(), reason })?;
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        if let Some(tag) = tag {
            if !is_tag(tag) {
                return Err(ReferenceError::BadTag { reference: reference(), tag: tag.to_owned() });
            }
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry: registry.to_owned(), repository, tag, digest })
    }

    /// The registry's host, with its port if it was given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository inside the registry, `library/` added for an
    /// official image of `docker.io`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What the registry is asked for: the digest when there is one (it
    /// pins the image), else the tag.
    pub fn target(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.as_str(),
            (None, Some(tag)) => tag,
            (None, None) => DEFAULT_TAG,
        }
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

    fn from_str(text: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(text)
    }
}

/// A host name or address, and an optional port: `a.b`, `a:5000`,
/// `[::1]:5000`.
fn is_host(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else { return false };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        match after {
            "" => return true,
            _ => ("", after.strip_prefix(':').unwrap_or("!")),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, port),
            None => (text, ""),
        }
    };
    let port_ok = (port.is_empty() && !text.ends_with(':'))
        || ((1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = text.starts_with('[')
        || host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    port_ok && host_ok
}

/// One path component of a repository: lower-case letters and digits,
/// joined by `.`, `_`, `__` or dashes.
fn check_component(component: &str) -> Result<(), &'static str> {
    if component.is_empty() {
        return Err("a repository path component is empty");
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.iter().all(|&b| alnum(b) || matches!(b, b'.' | b'_' | b'-')) {
        return Err("a repository path component holds a character other than a-z, 0-9, `.`, `_` or `-`");
    }
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("a repository path component must start and end with a letter or digit");
    }
    for separator in component.split(|c: char| c.is_ascii_alphanumeric()).filter(|s| !s.is_empty()) {
        if !matches!(separator, "." | "_" | "__") && !separator.bytes().all(|b| b == b'-') {
            return Err("a repository path component joins its parts with other than `.`, `_`, `__` or dashes");
        }
    }
    Ok(())
}

/// A tag: a word character, then up to 127 word characters, `.` or `-`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A reference's registry, repository, tag and digest.
    type Parts = (String, String, Option<String>, Option<String>);

    fn parts(text: &str) -> Parts {
        let r = Reference::parse(text).unwrap();
        (
            r.registry().to_owned(),
            r.repository().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(|d| d.to_string()),
        )
    }

    fn owned(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Parts {
        (registry.into(), repository.into(), tag.map(Into::into), digest.map(Into::into))
    }

    #[test]
    fn a_bare_name_is_an_official_image_of_docker_io_at_latest() {
        assert_eq!(parts("busybox"), owned("docker.io", "library/busybox", Some("latest"), None));
        assert_eq!(parts("busybox:1.35"), owned("docker.io", "library/busybox", Some("1.35"), None));
        assert_eq!(parts("berth/base:1"), owned("docker.io", "berth/base", Some("1"), None));
        assert_eq!(parts("index.docker.io/busybox"), owned("docker.io", "library/busybox", Some("latest"), None));
    }

    #[test]
    fn a_first_component_with_a_dot_a_port_or_localhost_is_the_registry() {
        assert_eq!(
            parts("127.0.0.1:5000/berth/busybox:1.35"),
            owned("127.0.0.1:5000", "berth/busybox", Some("1.35"), None)
        );
        let pinned = format!("localhost:5000/a/b@sha256:{HEX}");
        assert_eq!(parts(&pinned), owned("localhost:5000", "a/b", None, Some(&pinned[pinned.len() - 71..])));
        assert_eq!(parts("localhost/x"), owned("localhost", "x", Some("latest"), None));
        assert_eq!(parts("registry.example.com/x/y:v2"), owned("registry.example.com", "x/y", Some("v2"), None));
        assert_eq!(parts("[::1]:5000/x"), owned("[::1]:5000", "x", Some("latest"), None));
        // One component is a repository even with a colon: the colon is its tag.
        assert_eq!(parts("host:5000"), owned("docker.io", "library/host", Some("5000"), None));
    }

    #[test]
    fn a_digest_pins_what_is_asked_even_beside_a_tag() {
        let r = Reference::parse(&format!("localhost:5000/a/b:1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.target(), format!("sha256:{HEX}"));
        assert_eq!(r.to_string(), format!("localhost:5000/a/b:1@sha256:{HEX}"));
        assert_eq!(Reference::parse("busybox").unwrap().target(), "latest");
        assert_eq!(Reference::parse("busybox").unwrap().to_string(), "docker.io/library/busybox:latest");
    }

    #[test]
    fn empty_upper_case_and_malformed_names_are_refused() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(Reference::parse("BusyBox"), Err(ReferenceError::Uppercase { .. })));
        assert!(matches!(Reference::parse("localhost:5000/Berth/x"), Err(ReferenceError::Uppercase { .. })));
        for bad in ["a//b", "-a", "a-", "a..b", "a___b", "a b", "/a", "a/", ":tag", "a/.b"] {
            assert!(matches!(Reference::parse(bad), Err(ReferenceError::BadRepository { .. })), "{bad}");
        }
        assert!(matches!(Reference::parse("a.b:99999999/x"), Err(ReferenceError::BadRegistry { .. })));
        assert!(matches!(Reference::parse("-a.b/x"), Err(ReferenceError::BadRegistry { .. })));
        // Separators the grammar allows.
        for good in ["a.b", "a_b", "a__b", "a---b", "a-b.c_d"] {
            Reference::parse(good).unwrap();
        }
    }

    #[test]
    fn bad_tags_and_digests_are_refused_with_what_was_wrong() {
        for bad in ["a:", "a:.x", "a:-x", "a:x!"] {
            assert!(
                matches!(
                    Reference::parse(bad),
                    Err(ReferenceError::BadTag { .. } | ReferenceError::BadRepository { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(Reference::parse("a:x!"), Err(ReferenceError::BadTag { tag, .. }) if tag == "x!"));
        assert!(matches!(Reference::parse(&format!("a:{}", "t".repeat(129))), Err(ReferenceError::BadTag { .. })));
        Reference::parse(&format!("a:{}", "t".repeat(128))).unwrap();
        assert!(matches!(
            Reference::parse("a@sha256:short"),
            Err(ReferenceError::BadDigest { source: DigestError::Malformed(_), .. })
        ));
        assert!(matches!(
            Reference::parse("a@md5:0123"),
            Err(ReferenceError::BadDigest { source: DigestError::Algorithm(_), .. })
        ));
    }

    #[test]
    fn a_name_longer_than_255_characters_is_refused() {
        let long = format!("localhost/{}", "a".repeat(246));
        assert_eq!(long.len(), 256);
        assert!(matches!(Reference::parse(&long), Err(ReferenceError::TooLong { len: 256, .. })));
        Reference::parse(&format!("localhost/{}", "a".repeat(245))).unwrap();
    }
}
