//! The `berth` command line against the real engine (and against none).

use std::process::Command;

fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

#[test]
fn berth_engine_reports_the_negotiated_api_of_the_provisioned_daemon() {
    let out = berth().arg("engine").env("DOCKER_HOST", "unix:///var/run/docker.sock").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("engine reachable: API 1."), "{stdout}");
}

#[test]
fn berth_engine_fails_clearly_when_no_daemon_listens() {
    let out = berth().arg("engine").env("DOCKER_HOST", "unix:///nonexistent/berth.sock").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to the daemon at unix:///nonexistent/berth.sock"), "{stderr}");
}

#[test]
fn berth_engine_refuses_an_unsupported_docker_host() {
    let out = berth().arg("engine").env("DOCKER_HOST", "ssh://somewhere").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported scheme"));
}

/// `berth --log-format json serve`: its log lines are JSON objects, and each
/// line logged while a request is served carries that request's id (the
/// one the client sent, which the answer echoes).
#[test]
fn json_logs_carry_a_requests_id_in_every_line_logged_while_it_is_served() {
    use std::io::Read;
    let data = tempfile::tempdir().unwrap();
    let mut child = berth()
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "tower_http=debug")
        .env("BERTH_SPARES", "")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (said, addr) = test_support::serve::until_listening(&mut stderr);
    let addr = addr.unwrap_or_else(|| panic!("berth serve did not listen: {said}"));
    for (id, path) in [("req-json-1", "/v1/health"), ("req-json-2", "/v1/no-such-route")] {
        let out = Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", "-H", &format!("x-request-id: {id}")])
            .arg(format!("http://{addr}{path}"))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(head.contains(&format!("x-request-id: {id}")), "{head}");
    }
    // A TERM, so that it says it is shutting down.
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let lines: Vec<serde_json::Value> =
        rest.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    for id in ["req-json-1", "req-json-2"] {
        let of_it: Vec<&serde_json::Value> = lines.iter().filter(|l| l["span"]["request_id"] == id).collect();
        assert!(of_it.len() >= 2, "the request's start and end, in:\n{rest}");
        assert!(of_it.iter().all(|l| l["level"].is_string() && l["fields"]["message"].is_string()), "{rest}");
    }
    let served: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["target"].as_str().is_some_and(|t| t.starts_with("tower_http"))).collect();
    assert!(served.iter().all(|l| l["span"]["request_id"].is_string()), "{rest}");
    for line in said.lines().chain(rest.lines()) {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "every line is JSON, notices too: {line}");
    }
    assert!(said.lines().any(|l| l.contains(r#""target":"berth::notice""#) && l.contains("backend")), "{said}");
    assert!(rest.contains("shutting down"), "the notice of the end too: {rest}");
}

/// `berth doctor` with `args` and `config` (TOML) over a fresh data folder:
/// its exit code and what it printed.
fn doctor(args: &[&str], config: &str, docker_host: &str) -> (i32, String) {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("berth.toml");
    std::fs::write(&file, config).unwrap();
    let out = berth()
        .arg("doctor")
        .arg("--config")
        .arg(&file)
        .arg("--data")
        .arg(data.path().join("data"))
        .args(args)
        .env("DOCKER_HOST", docker_host)
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), said)
}

#[test]
fn berth_doctor_on_the_provisioned_machine_finds_nothing_blocking() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (code, said) = doctor(&["--listen", &free], "", "unix:///var/run/docker.sock");
    assert_eq!(code, 0, "{said}");
    for line in [
        "ok    engine      the engine at unix:///var/run/docker.sock: API 1.4",
        "ok    clock ",
        "ok    images ",
        "ok    runtime     runc: runc version",
    ] {
        assert!(said.contains(line), "{line:?} in:\n{said}");
    }
    assert!(said.ends_with(" 0 blocking\n"), "{said}");
}

/// A machine with something missing: a template's image that is nowhere,
/// the native API's address taken by another process, and (second run) no
/// engine at all; each said with its fix, and the exit code is 1.
#[test]
fn berth_doctor_names_what_is_missing_with_its_fix_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = "[templates.ghost]\nimage = \"berth/not-here:0\"\n";
    let (code, said) = doctor(&["--listen", &addr], config, "unix:///var/run/docker.sock");
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains(
            "FAIL  images      the engine at unix:///var/run/docker.sock: missing berth/not-here:0 (template ghost)\n"
        ),
        "{said}"
    );
    assert!(said.contains(&format!("FAIL  listen      native API on {addr}: ")), "{said}");
    assert!(said.contains("fix: docker pull (or docker load) each"), "{said}");
    assert!(said.contains("fix: stop what listens there"), "{said}");
    assert!(said.ends_with(" 2 blocking\n"), "{said}");

    let (code, said) = doctor(&["--backend", "docker"], "", "unix:///nonexistent/berth-doctor.sock");
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("FAIL  engine      the engine at unix:///nonexistent/berth-doctor.sock does not answer"),
        "{said}"
    );
    assert!(said.contains("fix: start the engine, or point DOCKER_HOST"), "{said}");
}

/// `berth serve` on the real engine with one token, for the client's
/// commands; stopped when dropped.
struct Server {
    child: std::process::Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Server {
    /// A server with pools off and sealed runs on the engine.
    fn start() -> Server {
        Server::start_with("pools = false\n", "off")
    }

    /// A server with `config` (TOML before its `[tokens]`) and `BERTH_OCI=oci`.
    fn start_with(config_head: &str, oci: &str) -> Server {
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("berth.toml");
        std::fs::write(&config, format!("{config_head}[tokens]\ntok-cli = \"cli\"\n")).unwrap();
        let mut command = berth();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(data.path().join("d"));
        command.env("BERTH_SANDBOX_HELPER", test_support::api::helper_path());
        let (child, said, addr) = test_support::serve::spawn(command.env("BERTH_SPARES", "").env("BERTH_OCI", oci));
        let addr = addr.unwrap_or_else(|| panic!("berth serve did not listen: {said}"));
        Server { child, url: format!("http://{addr}"), _data: data }
    }

    /// `berth ARGS` (shell words) against this server in a tmux window of
    /// `x` by `y`, which says `EXITED <code>` when it ends.
    fn in_tmux(&self, name: &str, args: &str, x: u16, y: u16) -> Tmux {
        let shell = format!(
            "BERTH_URL={} BERTH_TOKEN=tok-cli {} {args}; echo EXITED $?; sleep 60",
            self.url,
            env!("CARGO_BIN_EXE_berth")
        );
        Tmux::open(name, &shell, x, y)
    }

    /// `berth ARGS…` against this server with its token: exit code, stdout, stderr.
    fn client(&self, args: &[&str]) -> (i32, String, String) {
        let out = berth().args(args).env("BERTH_URL", &self.url).env("BERTH_TOKEN", "tok-cli").output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client against a live `berth serve`: a run's output printed as it
/// comes and its exit code as berth's; a timeout, a wrong token, a missing
/// run and a server that is not there each with their own code; runs
/// listed as a table and as JSON.
#[test]
fn berth_run_prints_the_runs_output_and_exits_with_its_code_and_every_other_end_has_its_own() {
    let server = Server::start();
    let (code, out, err) = server.client(&["run", "--language", "sh", "--code", "echo hi; echo oops >&2; exit 3"]);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "hi\n", "oops\n"));
    let (code, out, _) =
        server.client(&["run", "--image", "busybox:1.35", "--param", "n=3", "--", "sh", "-c", "echo n=$PARAM_N"]);
    assert_eq!((code, out.as_str()), (0, "n=3\n"));
    let (code, _, err) = server.client(&["run", "--language", "sh", "--code", "sleep 30", "--timeout", "1"]);
    assert_eq!(code, 124, "{err}");

    let (code, table, _) = server.client(&["runs", "ls"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "a header and the three runs:\n{table}");
    assert!(lines[0].contains("ID") && lines[0].contains("STATUS") && lines[1].contains("timed_out"), "{table}");
    let (code, json, _) = server.client(&["runs", "ls", "-o", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((code, runs.as_array().map(Vec::len)), (0, Some(3)));
    let id = runs[0]["id"].as_str().unwrap();
    let (code, got, _) = server.client(&["runs", "get", id]);
    assert!(code == 0 && got.contains(id) && got.contains("timed_out"), "{got}");

    let (code, _, err) = server.client(&["runs", "get", "run_nope"]);
    assert_eq!(code, 66, "{err}");
    let wrong =
        berth().args(["runs", "ls"]).env("BERTH_URL", &server.url).env("BERTH_TOKEN", "wrong").output().unwrap();
    assert_eq!(wrong.status.code(), Some(77), "{}", String::from_utf8_lossy(&wrong.stderr));
    let gone = berth().args(["runs", "ls", "--url", "http://127.0.0.1:1"]).output().unwrap();
    assert_eq!(gone.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("berth is not reachable at http://127.0.0.1:1"));
}

/// `berth run` of a run straight on runc prints its output while it runs,
/// cold and from a warm pool: the first line is read while the run's
/// record still says `running`.
#[test]
fn berth_run_prints_a_runc_runs_output_while_it_runs_cold_and_pooled() {
    use std::io::BufRead;
    for (config, path) in [("pools = false\n", "cold"), ("", "pooled")] {
        let server = Server::start_with(config, "required");
        if path == "pooled" {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let sh_ready = || {
                let pools: serde_json::Value =
                    serde_json::from_str(&server.client(&["-o", "json", "pools"]).1).unwrap();
                pools.as_array().unwrap().iter().any(|p| p["name"] == "sh" && p["idle"].as_u64() >= Some(1))
            };
            while !sh_ready() {
                assert!(std::time::Instant::now() < deadline, "the pools fill");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let mut child = berth()
            .args(["run", "--language", "sh", "--code", "echo one; sleep 2; echo two"])
            .env("BERTH_URL", &server.url)
            .env("BERTH_TOKEN", "tok-cli")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let (_, runs, _) = server.client(&["-o", "json", "runs", "ls", "--limit", "1"]);
        let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
        assert_eq!(first, "one\n");
        assert_eq!(
            (runs[0]["status"].as_str(), runs[0]["runtime"].as_str()),
            (Some("running"), Some("runc")),
            "{path}"
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert_eq!((rest.as_str(), child.wait().unwrap().code()), ("two\n", Some(0)), "{path}");
        let (_, done, _) = server.client(&["-o", "json", "runs", "ls", "--limit", "1"]);
        let done: serde_json::Value = serde_json::from_str(&done).unwrap();
        assert_eq!((done[0]["path"].as_str(), done[0]["stdout"].as_str()), (Some(path), Some("one\ntwo\n")));
    }
}

/// An agent made, listed, read and removed through the client.
#[test]
fn an_agent_is_created_listed_read_and_removed_through_the_client() {
    let server = Server::start();
    let id = format!("cli-agent-{}", std::process::id());
    let _leftovers = test_support::leftovers::Leftovers::new().labelled("io.berth.object", &id);
    let (code, made, err) = server.client(&[
        "agents",
        "create",
        "--id",
        &id,
        "--image",
        "busybox:1.35",
        "--",
        "sh",
        "-c",
        "echo up; sleep 60",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(made.contains(&id) && made.contains("running"), "{made}");
    let (_, listed, _) = server.client(&["agents", "ls"]);
    assert!(listed.lines().any(|l| l.contains(&id) && l.contains("busybox:1.35")), "{listed}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, logs, _) = server.client(&["agents", "logs", &id]);
        if logs == "up\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{logs:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, removed, _) = server.client(&["agents", "rm", &id]);
    assert_eq!((code, removed.trim()), (0, format!("removed {id}").as_str()));
    let (code, _, _) = server.client(&["agents", "get", &id]);
    assert_eq!(code, 66);
}

/// A session with a relic, and a sandbox with a command run in it, made,
/// listed and removed through the client.
#[test]
fn sessions_relics_and_sandboxes_are_made_listed_and_removed_through_the_client() {
    let server = Server::start();
    let session = format!("cli-s-{}", std::process::id());
    let _leftovers = test_support::leftovers::Leftovers::new().labelled("io.berth.session", &session);
    let (code, said, err) = server.client(&["sessions", "create", &session]);
    assert_eq!((code, said.trim()), (0, format!("session {session}").as_str()), "{err}");
    let (code, _, err) = server.client(&[
        "relics",
        "start",
        "--session",
        &session,
        "--name",
        "web",
        "--image",
        "busybox:1.35",
        "--",
        "httpd",
        "-f",
        "-p",
        "8000",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, listed, _) = server.client(&["relics", "ls", "--session", &session]);
    assert!(listed.lines().any(|l| l.contains("web") && l.contains("running")), "{listed}");
    let (_, sessions, _) = server.client(&["sessions", "ls"]);
    assert!(sessions.lines().any(|l| l.trim() == session), "{sessions}");
    let (code, _, err) = server.client(&["sessions", "rm", &session]);
    assert!(code == 65 && err.contains("force"), "a session with a running relic ends only by force: {err}");
    let (code, ended, err) = server.client(&["sessions", "rm", "--force", &session]);
    assert_eq!((code, ended.trim()), (0, format!("ended {session}").as_str()), "{err}");
    let (_, listed, _) = server.client(&["-o", "json", "relics", "ls", "--session", &session]);
    let relics: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(relics[0]["status"], "stopped", "the relic ended with it: {relics}");

    let (code, made, err) =
        server.client(&["-o", "json", "sandboxes", "create", "--meta", "who=cli", "--timeout", "120"]);
    assert_eq!(code, 0, "{err}");
    let made: serde_json::Value = serde_json::from_str(&made).unwrap();
    let id = made["sandbox_id"].as_str().unwrap();
    let _sandbox = test_support::leftovers::Leftovers::new().labelled("io.berth.object", id);
    assert_eq!(made["metadata"], serde_json::json!({"who": "cli"}));
    let (code, out, err) = server.client(&["sandboxes", "run", id, "--", "sh", "-c", "echo hi; echo oops >&2; exit 4"]);
    assert_eq!((code, out.as_str(), err.as_str()), (4, "hi\n", "oops\n"));
    let (_, listed, _) = server.client(&["sandboxes", "ls"]);
    assert!(listed.lines().any(|l| l.contains(id) && l.contains("running")), "{listed}");
    let (code, _, err) = server.client(&["sandboxes", "create", "--meta", "no-equals"]);
    assert_eq!(code, 65, "a malformed --meta is refused before asking: {err}");
    let (code, _, _) = server.client(&["sandboxes", "rm", id]);
    assert_eq!(code, 0);
    let (_, after, _) = server.client(&["-o", "json", "sandboxes", "get", id]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&after).unwrap()["state"], "ended");
}

/// `berth exec` in an agent: its exit code and output without a terminal,
/// stdin forwarded with `-i`, and under tmux with `-it` a terminal of the
/// window's size that follows the window's resize, the shell's exit code
/// coming back as berth's.
#[test]
fn berth_exec_gives_a_command_stdin_and_a_terminal_that_follows_the_window() {
    let server = Server::start();
    let id = format!("cli-exec-{}", std::process::id());
    let _leftovers = test_support::leftovers::Leftovers::new().labelled("io.berth.object", &id);
    let (code, _, err) =
        server.client(&["agents", "create", "--id", &id, "--image", "busybox:1.35", "--", "sleep", "600"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.client(&["exec", &id, "--", "sh", "-c", "echo hi; echo oops >&2; exit 5"]);
    assert_eq!((code, out.as_str(), err.as_str()), (5, "hi\n", "oops\n"));
    let mut piped = berth()
        .args(["exec", "-i", &id, "--", "sh"])
        .env("BERTH_URL", &server.url)
        .env("BERTH_TOKEN", "tok-cli")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    piped.stdin.take().unwrap().write_all(b"echo from stdin; exit 7\n").unwrap();
    let done = piped.wait_with_output().unwrap();
    assert_eq!((done.status.code(), String::from_utf8_lossy(&done.stdout).as_ref()), (Some(7), "from stdin\n"));

    let pane = server.in_tmux("berth-exec", &format!("exec -it {id} -- sh"), 100, 30);
    let screen = |want: &str| pane.screen(want);
    let shown = screen("/ #");
    assert!(shown.contains("/ #"), "the shell's prompt: {shown}");
    pane.send("stty size; tty; echo ok-$((6*7))");
    let shown = screen("ok-42");
    assert!(shown.contains("30 100\n/dev/pts/") && shown.contains("ok-42"), "{shown}");
    pane.command(&["resize-window", "-x", "120", "-y", "40"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    pane.send("stty size");
    let shown = screen("40 120");
    assert!(shown.contains("40 120"), "the terminal follows the window: {shown}");
    pane.send("exit 9");
    let shown = screen("EXITED 9");
    assert!(shown.contains("EXITED 9"), "{shown}");
    server.client(&["agents", "rm", &id]);
}

/// An image of one random layer of 1 MiB pushed to the loopback registry
/// (`scripts/provision.sh` runs it on 127.0.0.1:5000) and removed from the
/// engine, so a pull of it moves bytes; its manifest is deleted at the end.
struct PushedImage {
    name: String,
}

impl PushedImage {
    fn push() -> PushedImage {
        let name = format!("127.0.0.1:5000/berth-pull-{}:1", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let mut random = vec![0u8; 1 << 20];
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random)).unwrap();
        std::fs::write(dir.path().join("noise"), random).unwrap();
        let import = format!("tar -C {} -cf - . | docker import - {name} >/dev/null", dir.path().display());
        assert!(Command::new("sh").args(["-c", &import]).status().unwrap().success(), "docker import");
        let pushed = Command::new("docker").args(["push", &name]).output().unwrap();
        assert!(pushed.status.success(), "the loopback registry takes it: {}", String::from_utf8_lossy(&pushed.stderr));
        assert!(Command::new("docker").args(["rmi", &name]).output().unwrap().status.success());
        PushedImage { name }
    }
}

impl Drop for PushedImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.name]).output();
        let (repo, tag) = self.name.trim_start_matches("127.0.0.1:5000/").split_once(':').unwrap();
        let manifest = format!("http://127.0.0.1:5000/v2/{repo}/manifests/{tag}");
        let accept = "Accept: application/vnd.docker.distribution.manifest.v2+json";
        let head = Command::new("curl").args(["-sI", "-H", accept, &manifest]).output().unwrap();
        let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
        if let Some(digest) = head.lines().find_map(|l| l.strip_prefix("docker-content-digest: ")) {
            let url = format!("http://127.0.0.1:5000/v2/{repo}/manifests/{}", digest.trim());
            let _ = Command::new("curl").args(["-s", "-X", "DELETE", &url]).output();
        }
    }
}

/// `berth pull` through a live server: the engine's progress streamed as
/// it goes (a layer's bytes of its size), then `pulled` and the image on
/// the engine; a second pull answers at once; a missing image and a
/// malformed reference each end with their own exit code.
#[test]
fn berth_pull_streams_the_pulls_progress_and_leaves_the_image_on_the_engine() {
    let server = Server::start();
    let image = PushedImage::push();
    let (code, out, err) = server.client(&["-o", "json", "pull", &image.name]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let downloading: Vec<&serde_json::Value> = events.iter().filter(|e| e["status"] == "Downloading").collect();
    assert!(!downloading.is_empty(), "bytes moved: {out}");
    assert!(downloading.iter().all(|e| e["total"].as_u64() > Some(1 << 20) && e["layer"].is_string()), "{out}");
    assert!(events.iter().any(|e| e["status"] == "Pull complete"), "{out}");
    assert_eq!(events.last().unwrap(), &serde_json::json!({"event": "pulled", "image": image.name}));
    let there = Command::new("docker").args(["image", "inspect", &image.name]).output().unwrap();
    assert!(there.status.success(), "the image is on the engine");

    let (code, again, _) = server.client(&["-o", "json", "pull", &image.name]);
    assert_eq!((code, again.lines().count()), (0, 1), "an image that is there is not pulled again: {again}");
    let (code, said, _) = server.client(&["pull", &image.name]);
    assert_eq!((code, said.trim()), (0, format!("pulled {}", image.name).as_str()));

    let missing = format!("127.0.0.1:5000/berth-pull-missing-{}:1", std::process::id());
    let (code, _, err) = server.client(&["pull", &missing]);
    assert_eq!(code, 66, "{err}");
    let (code, _, err) = server.client(&["pull", "not an image"]);
    assert_eq!(code, 65, "{err}");
    let trail = Command::new("curl")
        .args(["-s", "-H", "Authorization: Bearer tok-cli", &format!("{}/v1/audit?limit=10", server.url)])
        .output()
        .unwrap();
    let trail: serde_json::Value = serde_json::from_slice(&trail.stdout).unwrap();
    let pulls: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "image.pull" && e["target"] == image.name)
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(pulls, ["pulled"; 3], "each pull is audited");
}

/// `berth run` on a terminal (tmux) shows a spinner that says which run is
/// awaited until the run's output begins, then only the output; the
/// piped runs of the other tests show no spinner at all.
#[test]
fn berth_run_on_a_terminal_says_what_it_waits_for_until_the_output_begins() {
    let server = Server::start();
    let pane = server.in_tmux("berth-wait", "run --language sh --code 'sleep 3; echo done'", 100, 10);
    let screen = |want: &str| pane.screen(want);
    let waiting = screen("waiting for run_");
    let ended = screen("EXITED 0");
    assert!(waiting.contains("waiting for run_") && !waiting.contains("done"), "{waiting}");
    assert!(ended.contains("done\nEXITED 0") && !ended.contains("waiting for"), "the spinner is cleared: {ended}");
}

/// A detached tmux session running `shell` in a window of `x` by `y`,
/// killed when dropped.
struct Tmux {
    session: String,
}

impl Tmux {
    fn open(name: &str, shell: &str, x: u16, y: u16) -> Tmux {
        let session = format!("{name}-{}", std::process::id());
        let (x, y) = (x.to_string(), y.to_string());
        let made = Command::new("tmux").args(["new-session", "-d", "-s", &session, "-x", &x, "-y", &y, shell]).output();
        assert!(made.expect("tmux runs").status.success());
        Tmux { session }
    }

    /// `tmux COMMAND -t SESSION ARGS…`.
    fn command(&self, args: &[&str]) -> std::process::Output {
        let (command, rest) = args.split_first().expect("a tmux command");
        Command::new("tmux").arg(command).args(["-t", &self.session]).args(rest).output().expect("tmux runs")
    }

    fn send(&self, line: &str) {
        self.command(&["send-keys", line, "Enter"]);
    }

    /// The pane's text once it shows `want`, or as it is after 20 s.
    fn screen(&self, want: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let shown = String::from_utf8_lossy(&self.command(&["capture-pane", "-p"]).stdout).into_owned();
            if shown.contains(want) || std::time::Instant::now() > deadline {
                return shown;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.command(&["kill-session"]);
    }
}
