//! `berth exec`: a command in an agent over the interactive exec's one
//! WebSocket protocol (README.md, "Interactive exec"): the command first,
//! then the local stdin as binary messages and `{"eof":true}` at its end;
//! with `-t` a terminal of the local one's size, the local terminal in raw
//! mode while it runs, and a `{"resize":…}` on every window change. The
//! command's output is written as it comes; its exit code is the client's.

use std::io::Write;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::exit;
use super::http::ClientError;
use super::Connection;

/// The local terminal in raw mode until this is dropped, however the
/// command ends.
struct Raw;

impl Raw {
    fn enter() -> Result<Raw, ClientError> {
        crossterm::terminal::enable_raw_mode().map_err(|e| ClientError::Garbled(format!("raw mode: {e}")))?;
        Ok(Raw)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

fn size() -> Value {
    let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
    json!({"cols": cols.max(1), "rows": rows.max(1)})
}

/// Runs `argv` in agent `agent`; `stdin` forwards the local input, `tty`
/// gives the command a terminal.
pub async fn exec(connection: &Connection, agent: &str, argv: Vec<String>, stdin: bool, tty: bool) -> i32 {
    match session(connection, agent, argv, stdin, tty).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e}");
            exit::of_error(&e)
        }
    }
}

async fn session(
    connection: &Connection,
    agent: &str,
    argv: Vec<String>,
    stdin: bool,
    tty: bool,
) -> Result<i32, ClientError> {
    let base =
        connection.url.strip_prefix("http://").ok_or_else(|| ClientError::BadUrl { url: connection.url.clone() })?;
    let url = format!("ws://{}/v1/agents/{}/exec/ws", base.trim_end_matches('/'), super::segment(agent));
    let mut request = url.as_str().into_client_request().map_err(|_| ClientError::BadUrl { url: url.clone() })?;
    if let Some(token) = connection.token.as_ref().filter(|t| !t.is_empty()) {
        let value = format!("Bearer {token}").parse().map_err(|_| ClientError::BadUrl { url: "the token".into() })?;
        request.headers_mut().insert("authorization", value);
    }
    let (socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(answer) => {
            let status = answer.status().as_u16();
            let body = answer.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            let json: Value = serde_json::from_str(&body).unwrap_or_default();
            ClientError::Refused {
                status,
                code: json["error"]["code"].as_str().unwrap_or("error").to_owned(),
                message: json["error"]["message"].as_str().map(str::to_owned).unwrap_or(body),
            }
        }
        other => ClientError::Unreachable { url: url.clone(), why: other.to_string() },
    })?;
    let (mut tx, mut rx) = socket.split();
    let mut first = json!({"cmd": argv});
    if tty {
        first["tty"] = size();
    }
    let lost = |e: tokio_tungstenite::tungstenite::Error| ClientError::Garbled(e.to_string());
    tx.send(Message::Text(first.to_string().into())).await.map_err(lost)?;
    let _raw = if tty && stdin { Some(Raw::enter()?) } else { None };

    // The local side: stdin as it comes, window changes; the end of input said.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(16);
    let feeder = tokio::spawn(async move {
        let mut input = tokio::io::stdin();
        let mut window = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        let mut buf = vec![0u8; 16 * 1024];
        if !stdin {
            let _ = out_tx.send(Message::Text(json!({"eof": true}).to_string().into())).await;
            return;
        }
        loop {
            tokio::select! {
                read = input.read(&mut buf) => match read {
                    Ok(0) | Err(_) => {
                        let _ = out_tx.send(Message::Text(json!({"eof": true}).to_string().into())).await;
                        return;
                    }
                    Ok(n) => {
                        if out_tx.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                            return;
                        }
                    }
                },
                Some(()) = async { match window.as_mut() { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                    let resize = json!({"resize": size()}).to_string();
                    if out_tx.send(Message::Text(resize.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });

    let mut code = exit::SERVER_FAILED;
    loop {
        tokio::select! {
            Some(message) = out_rx.recv() => {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let event: Value = serde_json::from_str(&text).unwrap_or_default();
                    match event["event"].as_str() {
                        Some("log") => {
                            let data = event["data"].as_str().unwrap_or_default().as_bytes();
                            let _ = match event["stream"].as_str() {
                                Some("stderr") => std::io::stderr().write_all(data),
                                _ => std::io::stdout().write_all(data).and_then(|()| std::io::stdout().flush()),
                            };
                        }
                        Some("exit") => code = event["exit_code"].as_i64().map_or(exit::RUN_FAILED, |c| exit::of_run("failed", Some(c))),
                        Some("error") => {
                            drop(_raw);
                            eprintln!("berth: {}", event["message"].as_str().unwrap_or("the exec failed"));
                            feeder.abort();
                            return Ok(exit::REFUSED);
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    feeder.abort();
    Ok(code)
}
