//! `berth serve` as the integration tests start it: what it says on
//! stderr up to the line that says where it listens.

use std::io::BufRead;

/// Reads a `berth serve`'s `stderr` up to its `berth: listening on
/// http://ADDR` line (or with `--log-format json`, its JSON notice that
/// says `listening on http://ADDR`), or its end: everything it said, and
/// the address.
pub fn until_listening(stderr: &mut impl BufRead) -> (String, Option<String>) {
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            return (said, None);
        }
        said.push_str(&line);
        if let Some(addr) = notice(line.trim()).and_then(|n| n.strip_prefix("listening on http://").map(str::to_owned))
        {
            return (said, Some(addr));
        }
    }
}

/// The text of a serve notice: a `berth: ` line's rest, or the message
/// of a JSON line of target `berth::notice`.
pub fn notice(line: &str) -> Option<String> {
    if line.starts_with('{') {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        (event["target"] == "berth::notice").then(|| event["fields"]["message"].as_str().map(str::to_owned))?
    } else {
        line.strip_prefix("berth: ").map(str::to_owned)
    }
}

/// Spawns `command` (a `berth serve`) with its stderr piped, and reads
/// that up to its listening line: the child, what it said, and the
/// address. The rest of its stderr is drained behind, so it never blocks
/// on a full pipe.
pub fn spawn(command: &mut std::process::Command) -> (std::process::Child, String, Option<String>) {
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().expect("berth serve spawns");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("its stderr is piped"));
    let (said, addr) = until_listening(&mut stderr);
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, said, addr)
}
