//! Engine API versions and their negotiation.
//!
//! The client speaks every version from [`MIN_API_VERSION`] to
//! [`MAX_API_VERSION`]. Negotiation is a pure function of what the daemon
//! reports in `GET /version`: the lower of our maximum and the daemon's
//! `ApiVersion`, and a typed error when the daemon is below our minimum.

use std::fmt;
use std::str::FromStr;

/// An Engine API version such as `1.47`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        ApiVersion { major, minor }
    }
}

/// The oldest API this client speaks (Docker 20.10).
pub const MIN_API_VERSION: ApiVersion = ApiVersion::new(1, 41);
/// The newest API this client knows: the newest documented (Docker 29).
/// What changed from 1.42 on was read against what berth sends and reads:
/// nothing it needs was removed (1.52 dropped the events' legacy
/// `status`/`id`/`from` and an image's unset config fields, both read as
/// absent here), and what was added is extra fields, tolerated.
pub const MAX_API_VERSION: ApiVersion = ApiVersion::new(1, 55);

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an API version: {0:?}")]
pub struct ParseVersionError(pub String);

impl FromStr for ApiVersion {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseVersionError(s.to_owned());
        let (major, minor) = s.trim().trim_start_matches('v').split_once('.').ok_or_else(bad)?;
        Ok(ApiVersion { major: major.parse().map_err(|_| bad())?, minor: minor.parse().map_err(|_| bad())? })
    }
}

/// Why no version could be agreed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("the daemon speaks API {daemon}, below the minimum {minimum} this client supports")]
    DaemonTooOld { daemon: ApiVersion, minimum: ApiVersion },
    #[error("the daemon speaks API {minimum} at the oldest, above the newest {maximum} this client knows")]
    DaemonTooNew { minimum: ApiVersion, maximum: ApiVersion },
    #[error("API {pinned} was asked for (DOCKER_API_VERSION), outside the {minimum}..={maximum} this client speaks")]
    PinnedOutOfRange { pinned: ApiVersion, minimum: ApiVersion, maximum: ApiVersion },
    #[error(transparent)]
    Parse(#[from] ParseVersionError),
}

/// Checks a version asked for by the user (`DOCKER_API_VERSION`): one this
/// client cannot speak is refused rather than sent to the daemon.
pub fn pinned(version: &str) -> Result<ApiVersion, VersionError> {
    let pinned: ApiVersion = version.parse()?;
    if pinned < MIN_API_VERSION || pinned > MAX_API_VERSION {
        return Err(VersionError::PinnedOutOfRange { pinned, minimum: MIN_API_VERSION, maximum: MAX_API_VERSION });
    }
    Ok(pinned)
}

/// Picks the version to speak with a daemon that reports `daemon` as its
/// `ApiVersion` and, when it says, `daemon_min` as its `MinAPIVersion`.
pub fn negotiate(daemon: &str, daemon_min: Option<&str>) -> Result<ApiVersion, VersionError> {
    let daemon: ApiVersion = daemon.parse()?;
    if daemon < MIN_API_VERSION {
        return Err(VersionError::DaemonTooOld { daemon, minimum: MIN_API_VERSION });
    }
    // A daemon that no longer speaks anything this client knows (Docker 29
    // already refuses below 1.44) would refuse every call: say so once.
    // Optional, and only a check: a value that does not parse is ignored.
    match daemon_min.map(str::parse::<ApiVersion>) {
        Some(Ok(min)) if min > MAX_API_VERSION => {
            return Err(VersionError::DaemonTooNew { minimum: min, maximum: MAX_API_VERSION });
        }
        Some(Err(e)) => tracing::debug!(%e, "the daemon's MinAPIVersion does not parse; ignored"),
        _ => {}
    }
    Ok(daemon.min(MAX_API_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_daemon_is_spoken_to_at_our_maximum() {
        assert_eq!(negotiate("1.99", None).unwrap(), MAX_API_VERSION);
    }

    #[test]
    fn an_older_daemon_within_range_is_spoken_to_at_its_own_version() {
        assert_eq!(negotiate("1.43", Some("1.24")).unwrap(), ApiVersion::new(1, 43));
        assert_eq!(negotiate("1.41", None).unwrap(), MIN_API_VERSION);
    }

    #[test]
    fn a_daemon_below_the_minimum_is_a_typed_error() {
        assert_eq!(
            negotiate("1.40", None),
            Err(VersionError::DaemonTooOld { daemon: ApiVersion::new(1, 40), minimum: MIN_API_VERSION })
        );
    }

    #[test]
    fn a_daemon_whose_oldest_api_is_newer_than_ours_is_a_typed_error() {
        assert_eq!(negotiate("1.60", Some("1.44")).unwrap(), MAX_API_VERSION, "Docker 29 and later speak ours");
        assert_eq!(
            negotiate("1.70", Some("1.60")),
            Err(VersionError::DaemonTooNew { minimum: ApiVersion::new(1, 60), maximum: MAX_API_VERSION })
        );
        assert_eq!(negotiate("1.60", Some("")).unwrap(), MAX_API_VERSION, "an unreadable minimum is ignored");
    }

    #[test]
    fn a_pinned_version_must_be_one_this_client_speaks() {
        assert_eq!(pinned("1.43"), Ok(ApiVersion::new(1, 43)));
        assert!(matches!(pinned("1.24"), Err(VersionError::PinnedOutOfRange { .. })));
        assert!(matches!(pinned("1.99"), Err(VersionError::PinnedOutOfRange { .. })));
        assert!(matches!(pinned("one"), Err(VersionError::Parse(_))));
    }

    #[test]
    fn versions_compare_numerically_not_as_text() {
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 41));
        assert!(negotiate("garbage", None).is_err());
        assert!(negotiate("1.", None).is_err());
    }
}
