//! Why a request failed: the helper's one error type, and how an I/O
//! error maps to the protocol's error kinds.

use std::io;

use berth_sandbox_wire::ErrorKind;

/// A request that could not be done, with what the peer is told.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The operating system refused; `what` names the path or the call.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("process {0} has ended")]
    Ended(u32),
    /// A tunnel's connection was refused.
    #[error("nothing listens on port {0}")]
    NothingListens(u16),
}

impl Failure {
    /// An I/O error about `what` (a path, a call).
    pub fn io(what: impl std::fmt::Display, source: io::Error) -> Failure {
        Failure::Io { what: what.to_string(), source }
    }

    /// An I/O error about `path`, a missing path said as such.
    pub fn at(path: &std::path::Path, source: io::Error) -> Failure {
        let what = path.to_string_lossy().into_owned();
        match source.kind() {
            io::ErrorKind::NotFound => Failure::NotFound(what),
            _ => Failure::Io { what, source },
        }
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::Invalid(message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::Io { source, .. } => io_kind(source),
            Failure::NotFound(_) => ErrorKind::NotFound,
            Failure::Exists(_) => ErrorKind::Exists,
            Failure::Invalid(_) => ErrorKind::Invalid,
            Failure::Ended(_) => ErrorKind::Ended,
            Failure::NothingListens(_) => ErrorKind::NotFound,
        }
    }
}

impl From<nix::Error> for Failure {
    fn from(errno: nix::Error) -> Failure {
        Failure::io("system call", io::Error::from(errno))
    }
}

/// The protocol's kind for an I/O error.
pub fn io_kind(error: &io::Error) -> ErrorKind {
    match error.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => return ErrorKind::NoSpace,
        Some(libc::EISDIR) | Some(libc::ENOTDIR) | Some(libc::ENOTEMPTY) | Some(libc::EINVAL) => {
            return ErrorKind::Invalid
        }
        _ => {}
    }
    match error.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::AlreadyExists => ErrorKind::Exists,
        io::ErrorKind::PermissionDenied => ErrorKind::Denied,
        _ => ErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_reads_as_no_space() {
        assert_eq!(io_kind(&io::Error::from_raw_os_error(libc::ENOSPC)), ErrorKind::NoSpace);
        assert_eq!(io_kind(&io::Error::from_raw_os_error(libc::EDQUOT)), ErrorKind::NoSpace);
    }

    #[test]
    fn missing_existing_and_forbidden_map_to_their_kinds() {
        assert_eq!(io_kind(&io::Error::from_raw_os_error(libc::ENOENT)), ErrorKind::NotFound);
        assert_eq!(io_kind(&io::Error::from_raw_os_error(libc::EEXIST)), ErrorKind::Exists);
        assert_eq!(io_kind(&io::Error::from_raw_os_error(libc::EACCES)), ErrorKind::Denied);
        assert_eq!(io_kind(&io::Error::from_raw_os_error(libc::EPERM)), ErrorKind::Denied);
    }

    #[test]
    fn any_other_error_is_io() {
        assert_eq!(io_kind(&io::Error::from_raw_os_error(libc::EIO)), ErrorKind::Io);
    }
}
