//! The console (`/console`) in headless Chromium against a live `berth
//! serve` with tokens: the login that trades a token for a cookie, what the
//! page shows of a few known runs and an agent, a run's output followed
//! live to its end, and a screenshot at `target/console.png`. Beside it,
//! the pass's rules over the router: reads only, never the token itself.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use test_support::api::{answer, state};

use super::browser::Browser;

const TOKEN: &str = "console-token";

/// One request to a live server with the test's token; its JSON answer.
fn curl(addr: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut c = Command::new("curl");
    c.args(["-sS", "-m", "60", "-X", method, "-H", &format!("Authorization: Bearer {TOKEN}")]);
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
    }
    let out = c.arg(format!("http://{addr}{path}")).output().unwrap();
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target).unwrap();
    target.join("console.png")
}

/// The rows of one of the page's tables, as `{id, cells}`.
fn rows_of(table: &str) -> String {
    format!(
        "[...document.querySelectorAll('#{table} tbody tr[data-id]')]\
         .map(tr => ({{id: tr.dataset.id, cells: [...tr.cells].map(c => c.textContent)}}))"
    )
}

fn row<'a>(rows: &'a Value, id: &str) -> &'a Value {
    rows.as_array().and_then(|r| r.iter().find(|r| r["id"] == id)).unwrap_or_else(|| panic!("no row {id} in {rows}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_runs_and_agents_and_follows_a_runs_output_live_in_chromium() {
    let data = tempfile::tempdir().unwrap();
    let (server, said, addr) = test_support::serve::spawn(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("BERTH_TOKENS", format!("{TOKEN}=acme"))
            .env("BERTH_SPARES", ""),
    );
    let server = Killed(server);
    let addr = addr.unwrap_or_else(|| panic!("berth serve did not listen: {said}"));
    let agent = test_support::api::unique("console-agent");
    let _leftovers = test_support::leftovers::Leftovers::new().labelled("io.berth.object", &agent);

    let ok = curl(&addr, "POST", "/v1/runs", Some(json!({"language": "sh", "code": "echo one"})));
    let failed = curl(&addr, "POST", "/v1/runs", Some(json!({"language": "sh", "code": "echo two; exit 3"})));
    assert_eq!((ok["status"].as_str(), failed["status"].as_str()), (Some("succeeded"), Some("failed")));
    let beating = json!({"id": agent, "image": "busybox:1.35",
                         "command": ["sh", "-c", "while true; do echo beat; sleep 1; done"]});
    assert_eq!(curl(&addr, "POST", "/v1/agents", Some(beating))["status"], "running");

    let mut browser = Browser::launch(1360, 1400).await;
    let console = format!("http://{addr}/console");
    browser.navigate(&console).await;
    browser.wait_for("the login form", "!document.getElementById('login').hidden", Duration::from_secs(10)).await;
    assert_eq!(
        browser.eval("document.getElementById('board').hidden").await,
        json!(true),
        "nothing shows before a login"
    );

    let log_in = |token: &str| {
        format!(
            "document.getElementById('token').value = {}; document.getElementById('login').requestSubmit(); true",
            json!(token)
        )
    };
    browser.eval(&log_in("not-a-token")).await;
    let refused = browser
        .wait_for("a refused login", "document.getElementById('login-error').textContent", Duration::from_secs(10))
        .await;
    assert_eq!(refused, json!("no such token"));
    browser.eval(&log_in(TOKEN)).await;
    browser.wait_for("the board", "document.body.dataset.loaded === 'true'", Duration::from_secs(15)).await;
    assert_eq!(browser.eval("document.getElementById('tenant').textContent").await, json!("tenant acme"));
    assert_eq!(browser.eval("document.cookie").await, json!(""), "the pass's cookie is HttpOnly");

    let runs = browser.eval(&rows_of("runs")).await;
    let ok_id = ok["id"].as_str().unwrap();
    let failed_id = failed["id"].as_str().unwrap();
    assert_eq!(row(&runs, ok_id)["cells"][1], "succeeded");
    assert_eq!(row(&runs, failed_id)["cells"][1], "failed");
    assert_eq!(row(&runs, failed_id)["cells"][2], "3", "the exit code");
    assert_eq!(row(&runs, ok_id)["cells"][3], ok["path"], "the path (cold, or pooled once the pools fill)");
    assert!(row(&runs, ok_id)["cells"][6].as_str().unwrap().ends_with(" ms"), "the latency");
    let bars = browser.eval("Number(document.getElementById('chart').dataset.bars)").await;
    assert_eq!(bars, json!(2), "one bar per finished run");
    let agents = browser.eval(&rows_of("agents")).await;
    assert_eq!(row(&agents, &agent)["cells"][1], "running");

    let ticking = json!({"language": "sh", "wait": false,
                         "code": "for i in 1 2 3 4; do echo tick$i; sleep 1; done"});
    let live = curl(&addr, "POST", "/v1/runs", Some(ticking));
    let live_id = live["id"].as_str().unwrap().to_owned();
    let pick = format!("document.querySelector('#runs tr[data-id=\"{live_id}\"]')");
    browser.wait_for("the new run's row", &format!("{pick} !== null"), Duration::from_secs(10)).await;
    browser.eval(&format!("{pick}.click(); true")).await;
    let log = "document.getElementById('log').textContent";
    let state = "document.getElementById('log-state').textContent";
    let early = browser
        .wait_for(
            "the run's first line",
            &format!("{log}.includes('tick1') && [{log}, {state}]"),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(early[1], "live", "the first line shows while the run goes on: {early}");
    assert!(!early[0].as_str().unwrap().contains("tick4"), "{early}");
    let ended = browser
        .wait_for("the run's end", &format!("{state}.startsWith('ended') && [{log}, {state}]"), Duration::from_secs(30))
        .await;
    assert_eq!(ended, json!(["tick1\ntick2\ntick3\ntick4\n", "ended: succeeded (exit 0)"]), "each line once");

    browser.eval(&format!("document.querySelector('#agents tr[data-id=\"{agent}\"]').click(); true")).await;
    browser
        .wait_for(
            "the agent's output",
            &format!("{log}.includes('beat') && {state} === 'live'"),
            Duration::from_secs(15),
        )
        .await;
    browser
        .wait_for(
            "the refreshed chart",
            "document.getElementById('chart').dataset.bars === '3'",
            Duration::from_secs(10),
        )
        .await;

    let shot = screenshot_path();
    browser.screenshot(&shot).await;
    println!("console screenshot: {}", shot.display());

    browser.eval("document.getElementById('logout').click(); true").await;
    browser
        .wait_for("the login after logout", "!document.getElementById('login').hidden", Duration::from_secs(10))
        .await;
    browser.navigate(&console).await;
    browser.wait_for("the login on reload", "!document.getElementById('login').hidden", Duration::from_secs(10)).await;

    curl(&addr, "DELETE", &format!("/v1/agents/{agent}"), None);
    drop(server);
}

/// A `berth serve` killed when dropped, however the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn request(method: &str, uri: &str, cookie: Option<&str>) -> axum::http::request::Builder {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r
}

/// The cookie a login answered with, as a `Cookie` header would send it,
/// and its attributes.
fn cookie_of(set_cookie: &str) -> (String, String) {
    let (pair, attributes) = set_cookie.split_once(';').unwrap_or((set_cookie, ""));
    (pair.to_owned(), attributes.to_owned())
}

#[tokio::test]
async fn a_console_pass_serves_reads_only_and_ends_with_its_logout() {
    let router = berth_api::native::app(state(&[(TOKEN, "acme")]));
    let login = |token: &str| {
        request("POST", "/console/login", None)
            .header("content-type", "application/json")
            .body(Body::from(json!({"token": token}).to_string()))
            .unwrap()
    };
    let refused = answer(&router, login("wrong")).await;
    assert_eq!(
        (refused.status, refused.json["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert!(refused.headers.get("set-cookie").is_none(), "a refused login sets no cookie");

    let given = answer(&router, login(TOKEN)).await;
    assert_eq!((given.status, given.json["tenant"].as_str()), (StatusCode::OK, Some("acme")));
    let (cookie, attributes) = cookie_of(given.headers["set-cookie"].to_str().unwrap());
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(attributes.contains(attribute), "{attribute} in {attributes}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie carries a pass, not the token: {cookie}");

    let read = answer(&router, request("GET", "/v1/runs", Some(&cookie)).body(Body::empty()).unwrap()).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    let whoami = answer(&router, request("GET", "/console/whoami", Some(&cookie)).body(Body::empty()).unwrap()).await;
    assert_eq!(whoami.json, json!({"tenant": "acme"}));

    let write = request("POST", "/v1/sessions", Some(&cookie))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(answer(&router, write).await.status, StatusCode::UNAUTHORIZED, "a pass does not write");
    let upgrade = request("GET", "/v1/agents/a/exec/ws", Some(&cookie))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Body::empty())
        .unwrap();
    assert_eq!(answer(&router, upgrade).await.status, StatusCode::UNAUTHORIZED, "a pass opens no terminal");
    let port = request("GET", "/v1/sandboxes/sbx1/ports/8000/index.html", Some(&cookie)).body(Body::empty()).unwrap();
    assert_eq!(
        answer(&router, port).await.status,
        StatusCode::UNAUTHORIZED,
        "a pass does not reach a sandbox's server"
    );
    let forged =
        answer(&router, request("GET", "/v1/runs", Some("berth_console=forged")).body(Body::empty()).unwrap()).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    let out = answer(&router, request("POST", "/console/logout", Some(&cookie)).body(Body::empty()).unwrap()).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "the cookie is cleared");
    let after = answer(&router, request("GET", "/v1/runs", Some(&cookie)).body(Body::empty()).unwrap()).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "a pass ends with its logout");
}

#[tokio::test]
async fn the_console_page_loads_nothing_from_elsewhere() {
    let router = berth_api::native::app(state(&[]));
    let page = answer(&router, request("GET", "/console", None).body(Body::empty()).unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"), "{policy}");
    for asset in ["/console/console.js", "/console/console.css"] {
        assert!(page.text.contains(asset), "the page names {asset}");
        let got = answer(&router, request("GET", asset, None).body(Body::empty()).unwrap()).await;
        assert_eq!(got.status, StatusCode::OK, "{asset}");
        let text = got.text.replace("http://www.w3.org/2000/svg", "");
        assert!(!text.contains("http://") && !text.contains("https://"), "{asset} names no other server");
    }
    assert!(!page.text.contains("https://"), "the page names no other server");
    let open = answer(&router, request("GET", "/console/whoami", None).body(Body::empty()).unwrap()).await;
    assert_eq!(open.json, json!({"tenant": "default"}), "without tokens every caller is the default tenant");
}
