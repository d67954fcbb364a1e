//! Content digests: the [`Digest`] that names a blob (`sha256:` and 64
//! lower-case hex digits, the only form accepted), and the [`Verifier`]
//! that checks a blob's bytes against its digest and size as they stream
//! past, so a blob is never trusted before all of it was seen.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// The algorithm prefix of every digest accepted.
const SHA256: &str = "sha256:";

/// The hex digits of a sha256 digest.
const HEX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} uses an algorithm other than sha256, which is the only one supported")]
    Algorithm(String),
    #[error("digest {0:?} is not sha256:<64 lower-case hex digits>")]
    Malformed(String),
    #[error("blob {digest} holds more than the {size} bytes its descriptor gives")]
    Longer { digest: Digest, size: u64 },
    #[error("blob {digest} holds {got} bytes, not the {size} its descriptor gives")]
    Shorter { digest: Digest, size: u64, got: u64 },
    #[error("blob {expected} has the digest {got}: its bytes are not the ones named")]
    Mismatch { expected: Digest, got: Digest },
}

/// A sha256 content digest, `sha256:<64 lower-case hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Reads a digest, refusing any other algorithm or form.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let Some(hex) = text.strip_prefix(SHA256) else {
            return match text.split_once(':') {
                Some((algorithm, _))
                    if !algorithm.is_empty()
                        && algorithm
                            .bytes()
                            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'+' | b'.' | b'_' | b'-')) =>
                {
                    Err(DigestError::Algorithm(text.to_owned()))
                }
                _ => Err(DigestError::Malformed(text.to_owned())),
            };
        };
        if hex.len() == HEX_LEN && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Digest(text.to_owned()))
        } else {
            Err(DigestError::Malformed(text.to_owned()))
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Digest {
        let sum = hasher.finalize();
        let mut text = String::with_capacity(SHA256.len() + HEX_LEN);
        text.push_str(SHA256);
        for byte in sum {
            text.push_str(&format!("{byte:02x}"));
        }
        Digest(text)
    }

    /// The 64 hex digits, which name the blob's file in a layout or cache.
    pub fn hex(&self) -> &str {
        &self.0[SHA256.len()..]
    }

    /// The whole digest, `sha256:` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Digest, DigestError> {
        Digest::parse(text)
    }
}

/// Checks a blob against the digest and size its descriptor gives, chunk
/// by chunk: a blob longer than its size is refused at the chunk that
/// passes it, and [`Verifier::finish`] checks the length and the digest.
pub struct Verifier {
    expected: Digest,
    size: u64,
    seen: u64,
    hasher: Sha256,
}

impl Verifier {
    pub fn new(expected: &Digest, size: u64) -> Verifier {
        Verifier { expected: expected.clone(), size, seen: 0, hasher: Sha256::new() }
    }

    /// Takes the next chunk of the blob.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), DigestError> {
        let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        if len > self.size - self.seen {
            return Err(DigestError::Longer { digest: self.expected.clone(), size: self.size });
        }
        self.seen += len;
        self.hasher.update(chunk);
        Ok(())
    }

    /// The bytes taken so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Ends the blob: it is whole and its bytes are the ones named.
    pub fn finish(self) -> Result<(), DigestError> {
        if self.seen != self.size {
            return Err(DigestError::Shorter { digest: self.expected, size: self.size, got: self.seen });
        }
        let got = Digest::from_hasher(self.hasher);
        if got != self.expected {
            return Err(DigestError::Mismatch { expected: self.expected, got });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sha256 of `hello`.
    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn a_sha256_digest_is_accepted_and_gives_its_hex() {
        let d = Digest::parse(HELLO).unwrap();
        assert_eq!(d.hex(), &HELLO[7..]);
        assert_eq!(d.to_string(), HELLO);
        assert_eq!(Digest::of(b"hello"), d);
    }

    #[test]
    fn other_algorithms_upper_case_and_short_digests_are_refused() {
        assert!(matches!(Digest::parse("sha512:abcd"), Err(DigestError::Algorithm(_))));
        assert!(matches!(Digest::parse(&HELLO.to_uppercase()), Err(DigestError::Malformed(_))));
        assert!(matches!(Digest::parse(&HELLO.replace('2', "A")), Err(DigestError::Malformed(_))));
        assert!(matches!(Digest::parse("sha256:abcd"), Err(DigestError::Malformed(_))));
        assert!(matches!(Digest::parse(&HELLO[7..]), Err(DigestError::Malformed(_))));
        assert!(matches!(Digest::parse(""), Err(DigestError::Malformed(_))));
    }

    #[test]
    fn the_verifier_accepts_the_named_bytes_in_any_chunks() {
        let d = Digest::parse(HELLO).unwrap();
        let mut v = Verifier::new(&d, 5);
        v.update(b"he").unwrap();
        v.update(b"").unwrap();
        v.update(b"llo").unwrap();
        assert_eq!(v.seen(), 5);
        v.finish().unwrap();
    }

    #[test]
    fn the_verifier_refuses_other_bytes_a_short_blob_and_a_long_one() {
        let d = Digest::parse(HELLO).unwrap();
        let mut other = Verifier::new(&d, 5);
        other.update(b"hellO").unwrap();
        assert!(matches!(other.finish(), Err(DigestError::Mismatch { got, .. }) if got == Digest::of(b"hellO")));
        let mut short = Verifier::new(&d, 5);
        short.update(b"hell").unwrap();
        assert!(matches!(short.finish(), Err(DigestError::Shorter { got: 4, .. })));
        let mut long = Verifier::new(&d, 5);
        long.update(b"hel").unwrap();
        assert!(matches!(long.update(b"lo!"), Err(DigestError::Longer { size: 5, .. })));
    }
}
