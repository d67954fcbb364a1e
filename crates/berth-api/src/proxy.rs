//! HTTP to a port inside a sandbox: the request goes through a tunnel the
//! sandbox's helper opens to its loopback (the sandbox needs no network
//! berth can reach), spoken by hyper's HTTP/1.1 client over that tunnel.

use axum::body::Body;
use axum::http::{header, HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use berth_core::sandboxes::link::TunnelItem;
use berth_core::Core;

/// Bytes moved at once between the tunnel and the HTTP client.
const PIECE: usize = 32 * 1024;

/// Headers that belong to the hop to berth, not to the sandbox's server.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "authorization",
    "x-access-token",
    "x-api-key",
    "e2b-sandbox-id",
    "e2b-sandbox-port",
    "e2b-traffic-access-token",
];

/// Takes the console's pass out of a request's cookies: a sandbox's server
/// is the tenant's code, and a pass is berth's. The sandbox's own cookies
/// stay; an answer's `Set-Cookie` of a pass is dropped on the way back.
fn keep_the_pass_out(headers: &mut axum::http::HeaderMap) {
    let theirs: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !is_pass(pair))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if theirs.is_empty() {
        return;
    }
    if let Ok(value) = theirs.join("; ").parse() {
        headers.insert(header::COOKIE, value);
    }
}

/// Whether a cookie pair (or a `Set-Cookie` value) is the console's pass.
fn is_pass(cookie: &str) -> bool {
    cookie.split_once('=').is_some_and(|(name, _)| name.trim() == crate::console::passes::COOKIE)
}

/// Why a request did not reach the port.
pub fn unreachable(message: impl Into<String>) -> Response {
    let message = message.into();
    (StatusCode::BAD_GATEWAY, axum::Json(serde_json::json!({ "code": 502, "message": message }))).into_response()
}

/// Sends `request` to `port` of the tenant's sandbox `id` and answers what
/// the server there answers. `path` replaces the request's path and query.
pub async fn forward(core: &Core, tenant: &str, id: &str, port: u16, path: &str, request: Request<Body>) -> Response {
    let tunnel = match core.sandbox_tunnel(tenant, id, port).await {
        Ok(t) => t,
        Err(e) if e.code() == "port_closed" => {
            return unreachable(format!("The sandbox {id} port {port} is not open: {}", e.message()))
        }
        Err(e) => return unreachable(format!("The sandbox {id} was not found or cannot be reached: {}", e.message())),
    };
    let (writer, mut answers) = tunnel.split();
    let (client_side, tunnel_side) = tokio::io::duplex(2 * PIECE);
    let (mut from_client, mut to_client) = tokio::io::split(tunnel_side);
    tokio::spawn(async move {
        let mut buf = vec![0u8; PIECE];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.send(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        writer.close().await;
    });
    tokio::spawn(async move {
        while let Some(item) = answers.recv().await {
            match item {
                TunnelItem::Data(bytes) => {
                    if to_client.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                TunnelItem::Closed(_) => break,
            }
        }
        let _ = to_client.shutdown().await;
    });
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(client_side)).await {
        Ok(pair) => pair,
        Err(e) => return unreachable(format!("The sandbox {id} port {port} did not speak HTTP: {e}")),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let (mut parts, body) = request.into_parts();
    for name in DROPPED {
        parts.headers.remove(HeaderName::from_static(name));
    }
    keep_the_pass_out(&mut parts.headers);
    parts.headers.insert(header::HOST, format!("localhost:{port}").parse().expect("a host header value"));
    parts.uri = match path.parse() {
        Ok(uri) => uri,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("the path {path:?}: {e}")).into_response(),
    };
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(mut answer) => {
            let passes = |v: &header::HeaderValue| v.to_str().is_ok_and(is_pass);
            let theirs: Vec<_> =
                answer.headers_mut().get_all(header::SET_COOKIE).iter().filter(|v| !passes(v)).cloned().collect();
            answer.headers_mut().remove(header::SET_COOKIE);
            for cookie in theirs {
                answer.headers_mut().append(header::SET_COOKIE, cookie);
            }
            answer.map(Body::new).into_response()
        }
        Err(e) => unreachable(format!("The sandbox {id} port {port} answered no HTTP: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandboxs_server_gets_its_own_cookies_and_never_the_consoles_pass() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append(header::COOKIE, "app=1; berth_console=secret".parse().unwrap());
        headers.append(header::COOKIE, "theme=dark".parse().unwrap());
        keep_the_pass_out(&mut headers);
        assert_eq!(headers.get_all(header::COOKIE).iter().collect::<Vec<_>>(), ["app=1; theme=dark"]);
        let mut only_pass = axum::http::HeaderMap::new();
        only_pass.insert(header::COOKIE, "berth_console=secret".parse().unwrap());
        keep_the_pass_out(&mut only_pass);
        assert!(only_pass.get(header::COOKIE).is_none());
        assert!(is_pass("berth_console=x; HttpOnly") && !is_pass("berth_consoles=x") && !is_pass("app=berth_console"));
    }
}
