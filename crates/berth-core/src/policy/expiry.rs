//! The one rule for an expiry, whether asked at definition or at renewal.

use std::time::Duration;

/// Why an expiry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryRefused {
    #[error("{0} is in the past")]
    Past(chrono::DateTime<chrono::Utc>),
    #[error("{requested} is past the maximum lifetime (until {limit})")]
    TooLong { requested: chrono::DateTime<chrono::Utc>, limit: chrono::DateTime<chrono::Utc> },
}

/// The one rule for an expiry, whether asked at definition or at renewal:
/// after `now`, and no later than `max_lifetime` from it.
pub fn check_expiry(
    now: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
    max_lifetime: Duration,
) -> Result<chrono::DateTime<chrono::Utc>, ExpiryRefused> {
    let limit = chrono::Duration::from_std(max_lifetime)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    if expires_at <= now {
        return Err(ExpiryRefused::Past(expires_at));
    }
    if expires_at > limit {
        return Err(ExpiryRefused::TooLong { requested: expires_at, limit });
    }
    Ok(expires_at)
}
