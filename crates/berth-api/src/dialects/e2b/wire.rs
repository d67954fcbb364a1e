//! envd's messages in protobuf's JSON mapping, as the e2b SDK sends them
//! (lowerCamelCase names, proto names accepted too; bytes as base64;
//! 64-bit integers as strings; enums by name or number) and as berth
//! answers them.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::connect::ConnectError;
use berth_core::sandboxes::{Entry, EntryType, Process, WatchEvent, WatchEventType};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProcessConfig {
    pub cmd: String,
    pub args: Vec<String>,
    pub envs: BTreeMap<String, String>,
    pub cwd: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Size {
    pub cols: u16,
    pub rows: u16,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Pty {
    pub size: Size,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StartRequest {
    pub process: ProcessConfig,
    pub pty: Option<Pty>,
    pub tag: Option<String>,
    /// Absent means open (envd's old behaviour); the SDK always says.
    pub stdin: Option<bool>,
}

/// A process by pid or by tag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Selector {
    pub pid: Option<u32>,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Selecting {
    pub process: Selector,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Input {
    #[serde(deserialize_with = "base64_bytes")]
    pub stdin: Option<Vec<u8>>,
    #[serde(deserialize_with = "base64_bytes")]
    pub pty: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SendInputRequest {
    pub process: Selector,
    pub input: Input,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InputData {
    pub input: Input,
}

/// One message of a `StreamInput` call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamInputRequest {
    pub start: Option<Selecting>,
    pub data: Option<InputData>,
    pub keepalive: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SendSignalRequest {
    pub process: Selector,
    pub signal: Option<Value>,
}

impl SendSignalRequest {
    /// The signal's number: SIGKILL and SIGTERM, by name or number.
    pub fn number(&self) -> Result<i32, ConnectError> {
        let number = match &self.signal {
            Some(Value::String(s)) if s == "SIGNAL_SIGKILL" => Some(9),
            Some(Value::String(s)) if s == "SIGNAL_SIGTERM" => Some(15),
            Some(Value::Number(n)) => n.as_i64().filter(|n| *n == 9 || *n == 15).map(|n| n as i32),
            _ => None,
        };
        number.ok_or_else(|| {
            ConnectError::new("invalid_argument", format!("signal {:?}: SIGNAL_SIGKILL or SIGNAL_SIGTERM", self.signal))
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UpdateRequest {
    pub process: Selector,
    pub pty: Option<Pty>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PathRequest {
    pub path: String,
    pub depth: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MoveRequest {
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WatchRequest {
    pub path: String,
    pub recursive: bool,
    #[serde(alias = "include_entry")]
    pub include_entry: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WatcherRequest {
    #[serde(alias = "watcher_id")]
    pub watcher_id: String,
}

impl WatcherRequest {
    pub fn wid(&self) -> Result<u64, ConnectError> {
        self.watcher_id.parse().map_err(|_| ConnectError::new("not_found", format!("no watcher {:?}", self.watcher_id)))
    }
}

fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| BASE64.decode(t.as_bytes()).map_err(serde::de::Error::custom)).transpose()
}

/// Decodes a message, or says it is not one.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ConnectError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| ConnectError::new("invalid_argument", format!("the message does not decode: {e}")))
}

pub fn b64(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// `-rw-r--r--` for a mode and a type.
fn permissions(kind: EntryType, mode: u32) -> String {
    let first = match kind {
        EntryType::Dir => 'd',
        EntryType::Symlink => 'l',
        _ => '-',
    };
    let mut s = String::from(first);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// A user's name as envd shows owners: the sandbox's user is `user`.
fn owner(uid: u32) -> String {
    match uid {
        0 => "root".into(),
        1000 => "user".into(),
        n => n.to_string(),
    }
}

pub fn entry(e: &Entry) -> Value {
    let kind = match e.kind {
        EntryType::File => "FILE_TYPE_FILE",
        EntryType::Dir => "FILE_TYPE_DIRECTORY",
        EntryType::Symlink => "FILE_TYPE_SYMLINK",
        EntryType::Other => "FILE_TYPE_UNSPECIFIED",
    };
    let modified = chrono::DateTime::from_timestamp(e.modified, 0).unwrap_or_default().to_rfc3339();
    let mut v = json!({
        "name": e.name,
        "type": kind,
        "path": e.path,
        "size": e.size.to_string(),
        "mode": e.mode,
        "permissions": permissions(e.kind, e.mode),
        "owner": owner(e.uid),
        "group": owner(e.gid),
        "modifiedTime": modified,
        "isSymlink": e.kind == EntryType::Symlink,
    });
    if let Some(target) = &e.symlink_target {
        v["symlinkTarget"] = json!(target);
    }
    v
}

pub fn watch_event(e: &WatchEvent) -> Value {
    let kind = match e.kind {
        WatchEventType::Create => "EVENT_TYPE_CREATE",
        WatchEventType::Write => "EVENT_TYPE_WRITE",
        WatchEventType::Remove => "EVENT_TYPE_REMOVE",
        WatchEventType::Rename => "EVENT_TYPE_RENAME",
        WatchEventType::Chmod => "EVENT_TYPE_CHMOD",
    };
    json!({ "name": e.name, "type": kind })
}

pub fn process_info(p: &Process) -> Value {
    let (cmd, args) = p.argv.split_first().map(|(c, a)| (c.clone(), a.to_vec())).unwrap_or_default();
    let mut config = json!({ "cmd": cmd, "args": args, "envs": p.env });
    if let Some(cwd) = &p.cwd {
        config["cwd"] = json!(cwd);
    }
    let mut v = json!({ "config": config, "pid": p.pid });
    if let Some(tag) = &p.tag {
        v["tag"] = json!(tag);
    }
    v
}

/// The end of a process as envd says it (Go's `ProcessState`).
pub fn end_event(code: Option<i32>, signal: Option<i32>) -> Value {
    match (code, signal) {
        (_, Some(sig)) => {
            let name = if sig == 9 { "killed".to_owned() } else { format!("signal {sig}") };
            json!({ "exitCode": -1, "exited": false, "status": format!("signal: {name}"), "error": format!("signal: {name}") })
        }
        (Some(0), None) => json!({ "exitCode": 0, "exited": true, "status": "exit status 0" }),
        (Some(n), None) => {
            json!({ "exitCode": n, "exited": true, "status": format!("exit status {n}"), "error": format!("exit status {n}") })
        }
        (None, None) => {
            json!({ "exitCode": -1, "exited": false, "status": "unknown", "error": "the process's end is unknown" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_request_as_the_sdk_sends_it_decodes() {
        let r: StartRequest =
            decode(br#"{"process":{"cmd":"/bin/bash","args":["-l","-c","echo hi"],"envs":{"X":"y"}},"stdin":false}"#)
                .unwrap();
        assert_eq!((r.process.cmd.as_str(), r.process.args.len(), r.stdin), ("/bin/bash", 3, Some(false)));
        let i: SendInputRequest = decode(br#"{"process":{"pid":103},"input":{"stdin":"YWJjCg=="}}"#).unwrap();
        assert_eq!((i.process.pid, i.input.stdin), (Some(103), Some(b"abc\n".to_vec())));
    }

    #[test]
    fn signals_are_taken_by_name_or_number_and_others_refused() {
        let named: SendSignalRequest = decode(br#"{"process":{"pid":1},"signal":"SIGNAL_SIGKILL"}"#).unwrap();
        assert_eq!(named.number().unwrap(), 9);
        let numbered: SendSignalRequest = decode(br#"{"process":{"pid":1},"signal":15}"#).unwrap();
        assert_eq!(numbered.number().unwrap(), 15);
        let other: SendSignalRequest = decode(br#"{"process":{"pid":1},"signal":"SIGNAL_SIGHUP"}"#).unwrap();
        assert_eq!(other.number().unwrap_err().code, "invalid_argument");
    }

    #[test]
    fn an_end_says_exit_status_or_the_signal_as_go_does() {
        assert_eq!(end_event(Some(0), None), json!({"exitCode": 0, "exited": true, "status": "exit status 0"}));
        assert_eq!(end_event(Some(3), None)["error"], json!("exit status 3"));
        assert_eq!(end_event(None, Some(9))["status"], json!("signal: killed"));
        assert_eq!(end_event(None, Some(9))["exitCode"], json!(-1));
    }

    #[test]
    fn permissions_are_spelled_as_ls_spells_them() {
        assert_eq!(permissions(EntryType::File, 0o644), "-rw-r--r--");
        assert_eq!(permissions(EntryType::Dir, 0o755), "drwxr-xr-x");
    }
}
