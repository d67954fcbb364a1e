//! Injectable sources of ids and time.
//!
//! Everything berth generates that reaches the engine (names, random
//! suffixes, expiry labels) comes from an [`IdSource`] and a [`Clock`], so a
//! recorded scenario replays byte for byte with [`SequentialIds`] and a
//! [`FixedClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Makes new ids.
pub trait IdSource: Send + Sync + 'static {
    /// A fresh id of 12 lower-case hex characters.
    fn next_hex(&self) -> String;
}

/// Random ids.
#[derive(Debug, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_hex(&self) -> String {
        let v = uuid::Uuid::new_v4().simple().to_string();
        v[..12].to_owned()
    }
}

/// Ids `000000000001`, `000000000002`, … for tests and recordings.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdSource for SequentialIds {
    fn next_hex(&self) -> String {
        format!("{:012x}", self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Tells the time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        FixedClock(Mutex::new(t))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
