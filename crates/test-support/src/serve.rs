//! `berth serve` as the integration tests start it: what it says on
//! stderr up to the line that says where it listens.

use std::io::BufRead;

/// Reads a `berth serve`'s `stderr` up to its `berth: listening on
/// http://ADDR` line, or its end: everything it said, and the address.
pub fn until_listening(stderr: &mut impl BufRead) -> (String, Option<String>) {
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            return (said, None);
        }
        said.push_str(&line);
        if let Some(addr) = line.trim().strip_prefix("berth: listening on http://") {
            return (said, Some(addr.to_owned()));
        }
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
