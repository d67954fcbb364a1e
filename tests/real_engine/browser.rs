//! A headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol, for the console's test: one page, JavaScript evaluated in it,
//! waits on what it shows, and a screenshot.
//!
//! The browser listens on a port it picks (`--remote-debugging-port=0`)
//! and says which on stderr; the driver attaches to its first page with a
//! flattened session and sends every command on that session.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile and a window of `width` x
    /// `height`. A missing browser fails the test with what to run.
    pub async fn launch(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check"])
            .args(["--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("chromium does not start ({e}): scripts/provision.sh installs it"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            let mut said = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
                said.push_str(&line);
                said.push('\n');
            }
            panic!("chromium ended without a DevTools endpoint:\n{said}");
        })
        .await
        .expect("chromium says where DevTools listens within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str()).await.unwrap();
        let mut browser = Browser { child, socket, session: String::new(), next_id: 0, _profile: profile };
        let targets = browser.call_on(None, "Target.getTargets", json!({})).await;
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("chromium has no page: {targets}"))["targetId"]
            .clone();
        let attached = browser.call_on(None, "Target.attachToTarget", json!({"targetId": page, "flatten": true})).await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        browser.call("Emulation.setDeviceMetricsOverride", metrics).await;
        browser.call("Page.enable", json!({})).await;
        browser
    }

    /// One command, on the page's session or (`None`) the browser's; its
    /// result. Events that arrive meanwhile are dropped.
    async fn call_on(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            command["sessionId"] = json!(s);
        }
        self.socket.send(Message::text(command.to_string())).await.unwrap();
        let started = Instant::now();
        loop {
            let left = COMMAND_TIMEOUT.checked_sub(started.elapsed()).unwrap_or_default();
            let message = tokio::time::timeout(left, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("DevTools did not answer {method} within {COMMAND_TIMEOUT:?}"))
                .expect("the DevTools socket stays open")
                .unwrap();
            let Message::Text(text) = message else { continue };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == json!(id) {
                if let Some(e) = answer.get("error") {
                    panic!("DevTools refused {method}: {e}");
                }
                return answer["result"].clone();
            }
        }
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call_on(Some(&session), method, params).await
    }

    pub async fn navigate(&mut self, url: &str) {
        let answer = self.call("Page.navigate", json!({"url": url})).await;
        assert!(answer.get("errorText").is_none(), "{url} did not load: {answer}");
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value; an exception fails the test with its text.
    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap_or_else(|e| panic!("{expression} threw: {e}"))
    }

    async fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let answer = self.call("Runtime.evaluate", params).await;
        match answer.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(answer["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` every 100 ms until it is truthy, and returns
    /// it; `what` names it when it never becomes so. An exception counts
    /// as not yet (the page may still be loading).
    pub async fn wait_for(&mut self, what: &str, expression: &str, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            let v = self.try_eval(expression).await.unwrap_or(Value::Null);
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("") && v != json!([]);
            if truthy {
                return v;
            }
            if started.elapsed() > within {
                let body = self.try_eval("document.body.innerText").await;
                panic!("the page never showed {what} within {within:?}; it shows:\n{body:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a PNG of the whole page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true})).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
