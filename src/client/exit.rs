//! The client's exit codes (sans IO): a run's own exit code when it has
//! one, and a code of its own for every other way a command ends. README.md
//! has the table.

use super::http::ClientError;

/// The run exceeded its timeout (as `timeout(1)` says).
pub const TIMED_OUT: i32 = 124;
/// The run was killed for memory (as a shell reports SIGKILL).
pub const OOM_KILLED: i32 = 137;
/// The run was cancelled (as a shell reports SIGINT).
pub const CANCELLED: i32 = 130;
/// The run failed without an exit code of its own (the engine failed it).
pub const RUN_FAILED: i32 = 1;
/// The request was refused as bad (a 4xx other than those below).
pub const REFUSED: i32 = 65;
/// No such run, agent, session or sandbox.
pub const NOT_FOUND: i32 = 66;
/// The server could not be reached.
pub const UNREACHABLE: i32 = 69;
/// The server failed (a 5xx) or answered what could not be read.
pub const SERVER_FAILED: i32 = 70;
/// The token is missing or wrong.
pub const UNAUTHORIZED: i32 = 77;

/// The exit code of a run that ended with `status` (and its own
/// `exit_code`, when it has one).
pub fn of_run(status: &str, exit_code: Option<i64>) -> i32 {
    match (status, exit_code) {
        ("timed_out", _) => TIMED_OUT,
        ("oom_killed", _) => OOM_KILLED,
        ("cancelled", _) => CANCELLED,
        ("succeeded" | "dry_run", _) => 0,
        (_, Some(code)) => i32::try_from(code.clamp(0, 255)).unwrap_or(RUN_FAILED),
        (_, None) => RUN_FAILED,
    }
}

/// The exit code of a command run in a sandbox: its own, or as a shell
/// reports a signal's end (128 and the signal).
pub fn of_command(exit_code: Option<i64>, signal: Option<i64>) -> i32 {
    match (exit_code, signal) {
        (_, Some(signal)) => i32::try_from(128 + signal.clamp(1, 127)).unwrap_or(RUN_FAILED),
        (Some(code), None) => i32::try_from(code.clamp(0, 255)).unwrap_or(RUN_FAILED),
        (None, None) => RUN_FAILED,
    }
}

/// The exit code of a command that could not do what it was asked.
pub fn of_error(error: &ClientError) -> i32 {
    match error {
        ClientError::Unreachable { .. } | ClientError::BadUrl { .. } => UNREACHABLE,
        ClientError::Refused { status: 401 | 403, .. } => UNAUTHORIZED,
        ClientError::Refused { status: 404, .. } => NOT_FOUND,
        ClientError::Refused { status, .. } if *status < 500 => REFUSED,
        ClientError::Refused { .. } | ClientError::Garbled(_) => SERVER_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_exits_with_its_own_code_and_every_other_ending_with_one_of_its_own() {
        assert_eq!(of_run("succeeded", Some(0)), 0);
        assert_eq!(of_run("failed", Some(3)), 3);
        assert_eq!(of_run("failed", Some(300)), 255);
        assert_eq!(of_run("failed", None), RUN_FAILED);
        assert_eq!(of_run("timed_out", Some(137)), TIMED_OUT);
        assert_eq!(of_run("oom_killed", Some(137)), OOM_KILLED);
        assert_eq!(of_run("cancelled", None), CANCELLED);
        let codes = [TIMED_OUT, OOM_KILLED, CANCELLED, REFUSED, NOT_FOUND, UNREACHABLE, SERVER_FAILED, UNAUTHORIZED];
        assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), codes.len());
    }

    #[test]
    fn a_sandbox_command_exits_with_its_code_or_as_a_shell_says_its_signal() {
        assert_eq!(of_command(Some(5), None), 5);
        assert_eq!(of_command(None, Some(9)), 137);
        assert_eq!(of_command(Some(-1), Some(15)), 143);
        assert_eq!(of_command(None, None), RUN_FAILED);
    }

    #[test]
    fn a_refusal_exits_by_its_status() {
        let refused = |status| ClientError::Refused { status, code: "x".into(), message: "m".into() };
        assert_eq!(of_error(&refused(401)), UNAUTHORIZED);
        assert_eq!(of_error(&refused(404)), NOT_FOUND);
        assert_eq!(of_error(&refused(422)), REFUSED);
        assert_eq!(of_error(&refused(503)), SERVER_FAILED);
        assert_eq!(of_error(&ClientError::Unreachable { url: "u".into(), why: "w".into() }), UNREACHABLE);
    }
}
