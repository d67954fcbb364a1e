//! Signed file URLs: E2B's `v1` signature, which lets a `/files` URL open a
//! sandbox without its access token in a header (the SDK's
//! `download_url`/`upload_url`). Sans IO: the request's parts and the time
//! come in, a verdict goes out.
//!
//! The signature is `v1_` and the unpadded standard base64 of the SHA-256
//! of `path:operation:user:token`, with `:expiration` appended when the URL
//! expires (`expiration` in seconds since the epoch); `operation` is `read`
//! for a download and `write` for an upload, `user` empty for the default.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// What a signed URL may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
        }
    }
}

/// A signed URL's claim, from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<'a> {
    pub path: &'a str,
    pub operation: Operation,
    pub user: &'a str,
    pub signature: &'a str,
    pub expiration: Option<i64>,
}

/// Why a signed URL does not open the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Expired,
    Wrong,
}

/// The signature of `claim` made with `token`.
pub fn signature(claim: &Signed<'_>, token: &str) -> String {
    let mut raw = format!("{}:{}:{}:{}", claim.path, claim.operation.as_str(), claim.user, token);
    if let Some(e) = claim.expiration {
        raw.push_str(&format!(":{e}"));
    }
    let digest = Sha256::digest(raw.as_bytes());
    format!("v1_{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest))
}

/// Whether `claim` holds at `now` (seconds since the epoch) for `token`.
pub fn check(claim: &Signed<'_>, token: &str, now: i64) -> Result<(), Refused> {
    if claim.expiration.is_some_and(|e| e <= now) {
        return Err(Refused::Expired);
    }
    if berth_core::sandboxes::same_secret(&signature(claim, token), claim.signature) {
        Ok(())
    } else {
        Err(Refused::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(signature: &str, expiration: Option<i64>) -> Signed<'_> {
        Signed { path: "/home/user/a.txt", operation: Operation::Read, user: "user", signature, expiration }
    }

    #[test]
    fn the_signature_is_the_sdks_v1_form() {
        // python3 -c 'import hashlib,base64;print(base64.b64encode(hashlib.sha256(
        //   b"/home/user/a.txt:read:user:tok").digest()).rstrip(b"=").decode())'
        assert_eq!(signature(&claim("", None), "tok"), "v1_p0WqJQYCLtO6YX+e4h7VbpybRsdJbMbIw7clYpulIJk");
    }

    #[test]
    fn a_signed_url_holds_until_its_expiration_and_only_for_its_operation_and_token() {
        let good = signature(&claim("", Some(1000)), "tok");
        assert_eq!(check(&claim(&good, Some(1000)), "tok", 999), Ok(()));
        assert_eq!(check(&claim(&good, Some(1000)), "tok", 1000), Err(Refused::Expired));
        assert_eq!(check(&claim(&good, Some(1000)), "other", 999), Err(Refused::Wrong));
        assert_eq!(check(&claim(&good, Some(2000)), "tok", 999), Err(Refused::Wrong), "a moved expiration");
        let write = Signed { operation: Operation::Write, ..claim(&good, Some(1000)) };
        assert_eq!(check(&write, "tok", 999), Err(Refused::Wrong));
    }
}
