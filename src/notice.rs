//! What `berth serve` says of itself as it starts and stops (the backend
//! it chose, the runtimes' probes, where it listens): plain `berth: …`
//! lines on stderr, or with `--log-format json`, events of target
//! [`TARGET`] in the same JSON lines as the rest of its log, so a log
//! collector reads one format.

use std::fmt::Arguments;
use std::sync::atomic::{AtomicBool, Ordering};

/// The target of the notices' events; the log filter always keeps it.
pub const TARGET: &str = "berth::notice";

static JSON: AtomicBool = AtomicBool::new(false);

/// Sends the notices to the JSON log from now on.
pub fn to_json_log() {
    JSON.store(true, Ordering::Relaxed);
}

/// Says one notice.
pub fn say(text: Arguments<'_>) {
    if JSON.load(Ordering::Relaxed) {
        tracing::info!(target: TARGET, "{text}");
    } else {
        eprintln!("berth: {text}");
    }
}

/// `notice!("listening on http://{addr}")`: [`say`] with `format!`'s arguments.
macro_rules! notice {
    ($($arg:tt)*) => {
        $crate::notice::say(format_args!($($arg)*))
    };
}
pub(crate) use notice;
