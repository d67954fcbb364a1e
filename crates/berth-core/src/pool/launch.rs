//! The hand-off to a warm member: the command a member idles with, the
//! script that runs a run in it, and the decoder that finds where the run's
//! output ends.
//!
//! A member's process (under the container's init) is a POSIX shell that
//! checks it can hand off (`cat`, `env` and `head` are there), writes
//! [`READY`] to its stdout, and then reads from its stdin a line with the
//! length of the script that follows, and that many bytes ([`framed`]): a
//! swarm task's stdin is never closed by its attach (a service has no
//! stdin-once), so the end of the script cannot be its stdin's end. The
//! command then reads `/dev/null`, as a cold run's does. What it reads is a
//! script rendered here by [`script`]: the run's command under the run's
//! environment, every word single-quoted, followed by an end line written
//! to both stdout and stderr, `<marker> <exit code> <oom>`. The marker is
//! fresh for every run. The shell's own stderr goes to `/dev/null` while the
//! command keeps the real one, so what a shell reports of its jobs
//! (`Killed`, `Segmentation fault`) never mixes into the run's stderr: a
//! cold run has no such line either.
//!
//! Why an end line, not the member's exit: when a container's process ends,
//! the engine takes some 50 ms to tear the container down before it closes
//! the attached streams and answers the wait. The end line arrives as soon
//! as the command ends. It is read from both streams because the engine
//! copies each through its own pipe: only the marker on a stream says that
//! stream's output is all there. When a run kills the shell itself, no end
//! line comes; the member's exit, awaited all along, ends the run instead.
//!
//! Sans-IO: strings and bytes in, strings and bytes out. This module knows
//! neither pools nor backends.

use std::collections::BTreeMap;

/// What a member writes to stdout when it is ready for its run.
pub const READY: &[u8] = b"berth-ready\n";

/// The member's idle process: waits for its script on stdin, then runs it.
const BOOTSTRAP: &str = "command -v cat >/dev/null && command -v env >/dev/null && command -v head >/dev/null \
     || exit 127; printf 'berth-ready\\n'; IFS= read -r n; eval \"$(head -c \"$n\")\"";

/// Before the command, in the script: the real stderr kept as fd 3, the
/// shell's own sent to `/dev/null`.
const PROLOGUE: &str = "exec 3>&2 2>/dev/null\n";

/// After the command, in the script: its exit code, and whether the
/// member's cgroup (v1 `memory.oom_control`, v2 `memory.events`) counts an
/// OOM kill, for a 137 only. The end line follows on both streams.
const EPILOGUE: &str = r#"c=$?; k=0
if [ "$c" = 137 ]; then
  case "$(cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null)" in
    *"oom_kill "[1-9]*) k=1 ;;
  esac
fi
"#;

/// The longest end line after its marker (`-2147483648 1` and a newline).
const MAX_END_LINE: usize = 32;

/// The command a member is created with.
pub fn idle_command() -> Vec<String> {
    ["/bin/sh", "-c", BOOTSTRAP].iter().map(|s| s.to_string()).collect()
}

/// The process a run of `cmd` would be in a container of its own: the
/// image's `entrypoint`, then `cmd`, or else the image's `default` command.
pub fn argv(entrypoint: &[String], default: &[String], cmd: Option<&[String]>) -> Vec<String> {
    entrypoint.iter().chain(cmd.unwrap_or(default)).cloned().collect()
}

/// A run's end-of-output marker: unlikely to occur in any output by chance.
pub fn marker(hex: &str) -> String {
    format!("berth-end-{hex}")
}

/// The script that runs `cmd` in a member with `env` added to the member's
/// environment (as an exec's environment is added to its container's),
/// then writes the end line with `marker`. `PWD` and `SHLVL`, which the
/// shell sets for itself, are taken out again, so the run sees what it
/// would see in a container of its own.
///
/// `None` when the run cannot be handed off faithfully: no command, a NUL
/// byte (no process argument or variable can hold one), a variable name
/// with `=` or none at all, or a command name with `=` or `-` alone (`env`
/// would read it as a variable or as `-i`). Such a run takes the cold path.
pub fn script(cmd: &[String], env: &BTreeMap<String, String>, marker: &str) -> Option<String> {
    let program = cmd.first()?;
    if program.contains('=') || program.is_empty() || program == "-" || !carries(cmd, env) {
        return None;
    }
    let marker = quote(marker)?;
    let mut out = format!("{PROLOGUE}(exec env -u PWD -u SHLVL --");
    for (name, value) in env {
        out.push(' ');
        out.push_str(&quote(&format!("{name}={value}"))?);
    }
    for word in cmd {
        out.push(' ');
        out.push_str(&quote(word)?);
    }
    out.push_str(" </dev/null 2>&3 3>&-)\n");
    out.push_str(EPILOGUE);
    out.push_str(&format!(
        "printf '%s %s %s\\n' {marker} \"$c\" \"$k\"; printf '%s %s %s\\n' {marker} \"$c\" \"$k\" >&3\n"
    ));
    Some(out)
}

/// What a member is sent for `script`: its length in bytes on a line of
/// its own, then the script.
pub fn framed(script: &str) -> String {
    format!("{}\n{script}", script.len())
}

/// Whether a script can carry `words` and `env` as they are: no NUL byte
/// anywhere (no process argument or variable can hold one), and every
/// variable named, without `=`. What [`script`] asks of them, apart from
/// the program's name (which an image's entrypoint may come before).
pub fn carries(words: &[String], env: &BTreeMap<String, String>) -> bool {
    words.iter().all(|w| !w.contains('\0'))
        && env.iter().all(|(name, value)| {
            !name.is_empty() && !name.contains('=') && !name.contains('\0') && !value.contains('\0')
        })
}

/// `word` single-quoted for a POSIX shell: taken literally, whatever it
/// holds, except NUL, which no shell word can carry.
fn quote(word: &str) -> Option<String> {
    if word.contains('\0') {
        return None;
    }
    Some(format!("'{}'", word.replace('\'', r"'\''")))
}

/// An end line that is not one: the member's shell is not berth's, or
/// something wrote after the marker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndError {
    #[error("an end line that is not text")]
    NotText,
    #[error("an end line longer than {MAX_END_LINE} bytes")]
    TooLong,
    #[error("a malformed end line {0:?}")]
    Malformed(String),
}

/// How a run in a member ended, as its end line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub exit_code: i64,
    /// The member's cgroup counted an OOM kill (checked for a 137 only).
    pub oom_killed: bool,
}

/// Finds the end line in one of a member's output streams. Fed the
/// stream's chunks as they come; hands on the run's output (everything
/// before the marker) and holds back only what may be the start of the
/// marker. Bytes after the end line are not the run's and are dropped.
#[derive(Debug)]
pub struct EndScanner {
    marker: Vec<u8>,
    /// Output that may be the start of the marker.
    held: Vec<u8>,
    /// After the marker: the end line as far as it has come.
    line: Option<Vec<u8>>,
    end: Option<Result<End, EndError>>,
}

impl EndScanner {
    pub fn new(marker: &str) -> EndScanner {
        EndScanner { marker: marker.as_bytes().to_vec(), held: Vec::new(), line: None, end: None }
    }

    /// Takes the next chunk; passes the run's output in it to `output`.
    pub fn feed(&mut self, data: &[u8], mut output: impl FnMut(&[u8])) {
        if self.end.is_some() {
            return;
        }
        if let Some(line) = &mut self.line {
            line.extend_from_slice(data);
        } else {
            let mut buf = std::mem::take(&mut self.held);
            buf.extend_from_slice(data);
            match memchr::memmem::find(&buf, &self.marker) {
                Some(at) => {
                    output(&buf[..at]);
                    self.line = Some(buf[at + self.marker.len()..].to_vec());
                }
                None => {
                    let keep = partial_suffix(&buf, &self.marker);
                    output(&buf[..buf.len() - keep]);
                    self.held = buf[buf.len() - keep..].to_vec();
                }
            }
        }
        if let Some(line) = &self.line {
            if let Some(newline) = line.iter().position(|&b| b == b'\n') {
                self.end = Some(parse_end(&line[..newline]));
            } else if line.len() > MAX_END_LINE {
                self.end = Some(Err(EndError::TooLong));
            }
        }
    }

    /// The end line, once it has come whole: `Err` when it is not one.
    pub fn end(&self) -> Option<&Result<End, EndError>> {
        self.end.as_ref()
    }

    /// The stream ended without an end line: what was held back is output.
    pub fn finish(&mut self, mut output: impl FnMut(&[u8])) {
        if self.line.is_none() {
            output(&std::mem::take(&mut self.held));
        }
    }
}

/// A member's output as the engine logged it, turned back into what the
/// run wrote: the member's [`READY`] and the end lines left out. For a live
/// view of a pooled run; the run's record is read through [`EndScanner`]s
/// directly.
#[derive(Debug)]
pub struct MemberOutput {
    /// Stdout's first bytes, while they may still be [`READY`].
    head: Option<Vec<u8>>,
    stdout: EndScanner,
    stderr: EndScanner,
}

impl MemberOutput {
    pub fn new(marker: &str) -> MemberOutput {
        MemberOutput { head: Some(Vec::new()), stdout: EndScanner::new(marker), stderr: EndScanner::new(marker) }
    }

    /// The run's part of a chunk of the member's stdout.
    pub fn stdout(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let rest = match self.head.take() {
            None => data.to_vec(),
            Some(mut head) => {
                head.extend_from_slice(data);
                if head.len() < READY.len() && READY.starts_with(&head) {
                    self.head = Some(head);
                    return out;
                }
                // Without the ready line (a log read from its tail), everything is the run's.
                head.strip_prefix(READY).map(<[u8]>::to_vec).unwrap_or(head)
            }
        };
        self.stdout.feed(&rest, |b| out.extend_from_slice(b));
        out
    }

    /// The run's part of a chunk of the member's stderr.
    pub fn stderr(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.stderr.feed(data, |b| out.extend_from_slice(b));
        out
    }
}

fn parse_end(line: &[u8]) -> Result<End, EndError> {
    let text = std::str::from_utf8(line).map_err(|_| EndError::NotText)?;
    let mut words = text.trim_start_matches(' ').split(' ');
    let exit_code = words.next().and_then(|w| w.parse::<i64>().ok());
    let oom = words.next();
    match (exit_code, oom, words.next()) {
        (Some(exit_code), Some("0" | "1"), None) => Ok(End { exit_code, oom_killed: oom == Some("1") }),
        _ => Err(EndError::Malformed(text.to_owned())),
    }
}

/// The length of the longest end of `buf` that is a proper start of `marker`.
fn partial_suffix(buf: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(buf.len() + 1)).rev().find(|&n| buf.ends_with(&marker[..n])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    const MARKER: &str = "berth-end-0123456789ab";

    /// Runs `script` the way a member does: this machine's `/bin/sh`
    /// evaluating what it reads from stdin, from a bare environment.
    /// Its stdout and stderr after [`READY`].
    fn hand_off(script: &str) -> (String, String) {
        let mut child = Command::new("/bin/sh")
            .args(["-c", BOOTSTRAP])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("/bin/sh runs");
        child.stdin.take().expect("stdin").write_all(framed(script).as_bytes()).expect("script written");
        let out = child.wait_with_output().expect("the shell ends");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let stdout = text.strip_prefix(std::str::from_utf8(READY).unwrap()).expect("ready first").to_owned();
        (stdout, String::from_utf8(out.stderr).expect("utf-8"))
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    /// Scans a whole stream: the run's output and its end.
    fn scan(stream: &str) -> (String, Option<Result<End, EndError>>) {
        let mut scanner = EndScanner::new(MARKER);
        let mut out = Vec::new();
        scanner.feed(stream.as_bytes(), |b| out.extend_from_slice(b));
        (String::from_utf8(out).unwrap(), scanner.end().cloned())
    }

    #[test]
    fn every_word_reaches_the_command_exactly_as_given() {
        let given = ["a b", "it's", "$HOME", "`id`", "\\n", "line\nbreak", "\"", "", "*", "--"];
        let mut cmd = words(&["sh", "-c", r#"for w in "$@"; do printf '<%s>' "$w"; done"#, "argv0"]);
        cmd.extend(words(&given));
        let (stdout, _) = hand_off(&script(&cmd, &BTreeMap::new(), MARKER).unwrap());
        let expected: String = given.iter().map(|w| format!("<{w}>")).collect();
        assert_eq!(scan(&stdout), (expected, Some(Ok(End { exit_code: 0, oom_killed: false }))));
    }

    #[test]
    fn the_run_sees_its_variables_and_not_the_shells_own() {
        let env = BTreeMap::from([
            ("PARAM_Q".to_owned(), "it's $x; `y`".to_owned()),
            ("BERTH_PARAMETERS".to_owned(), r#"{"q":"a b"}"#.to_owned()),
        ]);
        let (stdout, _) = hand_off(&script(&words(&["env"]), &env, MARKER).unwrap());
        let (out, _) = scan(&stdout);
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        assert_eq!(lines, [r#"BERTH_PARAMETERS={"q":"a b"}"#, "PARAM_Q=it's $x; `y`", "PATH=/usr/bin:/bin"]);
    }

    #[test]
    fn both_streams_end_with_the_exit_code_after_all_the_output() {
        let cmd = words(&["sh", "-c", "printf out; printf err >&2; exit 3"]);
        let (stdout, stderr) = hand_off(&script(&cmd, &BTreeMap::new(), MARKER).unwrap());
        let end = Some(Ok(End { exit_code: 3, oom_killed: false }));
        assert_eq!(scan(&stdout), ("out".to_owned(), end.clone()));
        assert_eq!(scan(&stderr), ("err".to_owned(), end));
        // A killed command: no word from the shell about it, as in a cold run.
        let killed = words(&["sh", "-c", "echo dying >&2; kill -9 $$"]);
        let (stdout, stderr) = hand_off(&script(&killed, &BTreeMap::new(), MARKER).unwrap());
        let end = Some(Ok(End { exit_code: 137, oom_killed: false }));
        assert_eq!(scan(&stdout), (String::new(), end.clone()));
        assert_eq!(scan(&stderr), ("dying\n".to_owned(), end));
        // A command that is not there: what env says, and 127.
        let (_, stderr) = hand_off(&script(&words(&["no-such-command"]), &BTreeMap::new(), MARKER).unwrap());
        let (text, end) = scan(&stderr);
        assert!(text.contains("no-such-command") && !text.contains("sh:"), "{text}");
        assert_eq!(end, Some(Ok(End { exit_code: 127, oom_killed: false })));
    }

    #[test]
    fn a_run_is_the_images_entrypoint_then_its_own_command_or_the_images() {
        let (entry, default) = (words(&["/bin/tool", "--json"]), words(&["--help"]));
        assert_eq!(argv(&entry, &default, Some(&words(&["x.pdf"]))), words(&["/bin/tool", "--json", "x.pdf"]));
        assert_eq!(argv(&entry, &default, None), words(&["/bin/tool", "--json", "--help"]));
        assert_eq!(argv(&[], &default, Some(&words(&["sh", "-c", "echo"]))), words(&["sh", "-c", "echo"]));
    }

    #[test]
    fn what_cannot_be_handed_off_faithfully_has_no_script() {
        let none = BTreeMap::new();
        let var = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(script(&[], &none, MARKER), None);
        assert_eq!(script(&words(&["python3", "-c", "print('\0')"]), &none, MARKER), None);
        assert_eq!(script(&words(&["A=1"]), &none, MARKER), None);
        assert_eq!(script(&words(&["-", "sh"]), &none, MARKER), None);
        assert_eq!(script(&words(&["sh"]), &var("A=B", "1"), MARKER), None);
        assert_eq!(script(&words(&["sh"]), &var("", "1"), MARKER), None);
        assert_eq!(script(&words(&["sh"]), &var("A", "\0"), MARKER), None);
        assert!(script(&words(&["sh", "-c", "echo hi"]), &none, MARKER).is_some());
    }

    #[test]
    fn a_stream_without_an_end_line_is_all_output() {
        let mut scanner = EndScanner::new(MARKER);
        let mut out = Vec::new();
        scanner.feed(b"almost berth-end-01", |b| out.extend_from_slice(b));
        assert_eq!(out, b"almost ");
        scanner.finish(|b| out.extend_from_slice(b));
        assert_eq!(out, b"almost berth-end-01");
        assert_eq!(scanner.end(), None);
    }

    #[test]
    fn a_malformed_or_endless_end_line_is_an_error() {
        assert!(matches!(scan(&format!("x{MARKER} zero 0\n")).1, Some(Err(_))));
        assert!(matches!(scan(&format!("{MARKER} 0 0 extra\n")).1, Some(Err(_))));
        assert!(matches!(scan(&format!("{MARKER} {}", "9".repeat(40))).1, Some(Err(_))));
        assert_eq!(scan(&format!("{MARKER} 0 0")).1, None, "not whole yet");
    }

    #[test]
    fn a_member_whose_stdin_stays_open_runs_its_script_and_the_command_reads_no_stdin() {
        let mut child = Command::new("/bin/sh")
            .args(["-c", BOOTSTRAP])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("/bin/sh runs");
        let cmd = words(&["sh", "-c", "cat; echo read to the end"]);
        let script = script(&cmd, &BTreeMap::new(), MARKER).unwrap();
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(framed(&script).as_bytes()).expect("script written");
        // stdin is held open until the shell has ended, as a swarm task's is.
        let out = child.wait_with_output().expect("the shell ends without its stdin closed");
        drop(stdin);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, format!("berth-ready\nread to the end\n{MARKER} 0 0\n"));
    }

    #[test]
    fn a_members_logged_output_is_the_runs_without_the_ready_and_end_lines() {
        let mut view = MemberOutput::new(MARKER);
        let mut out = Vec::new();
        for piece in ["berth-", "ready\nhel", "lo\n", &format!("{MARKER} 0 0\n")] {
            out.extend(view.stdout(piece.as_bytes()));
        }
        assert_eq!(out, b"hello\n");
        assert_eq!(view.stderr(format!("oops\n{MARKER} 0 0\n").as_bytes()), b"oops\n");
        // A tail that begins after the ready line: all of it is the run's.
        let mut tail = MemberOutput::new(MARKER);
        assert_eq!(tail.stdout(b"b"), b"");
        assert_eq!(tail.stdout(b"ye\n"), b"bye\n");
    }

    proptest! {
        #[test]
        fn output_and_end_survive_any_cutting_into_chunks(
            output in proptest::collection::vec(any::<u8>(), 0..300),
            code in -300i64..300,
            oom in any::<bool>(),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            // Output that is nearly the marker must not be taken for it.
            let mut output = output;
            output.extend_from_slice(&MARKER.as_bytes()[..MARKER.len() - 1]);
            output.push(b'!');
            let mut stream = output.clone();
            stream.extend_from_slice(format!("{MARKER} {code} {}\nafter", oom as u8).as_bytes());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut scanner = EndScanner::new(MARKER);
            let mut seen = Vec::new();
            for pair in cuts.windows(2) {
                scanner.feed(&stream[pair[0]..pair[1]], |b| seen.extend_from_slice(b));
            }
            scanner.finish(|b| seen.extend_from_slice(b));
            prop_assert_eq!(seen, output);
            prop_assert_eq!(scanner.end(), Some(&Ok(End { exit_code: code, oom_killed: oom })));
        }
    }
}
