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
