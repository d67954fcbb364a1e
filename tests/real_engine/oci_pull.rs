//! Images pulled for the `oci` backend straight from a registry, no engine
//! asked: the loopback registry `scripts/provision.sh` runs on
//! 127.0.0.1:5000 serves an image this module pushes itself through the
//! registry API (OCI, two gzip layers, a whiteout and an opaque directory
//! in the upper one), and the busybox:1.35 that docker pushed there
//! (Docker schema 2). Each is pulled with `berth_oci::image::registry`,
//! verified and applied onto a root.
//!
//! Then `berth serve` with no engine at all runs sandboxes of such images
//! on runc: one pulled from the registry, one from an OCI image layout,
//! their whiteouts applied as seen from inside.
//!
//! Needs the registry: when it does not answer these tests fail, never
//! skip. What is pushed goes under a repository of this process's own; the
//! registry is asked to delete its manifest at the end (a registry with
//! deletes off refuses), and the few bytes of its blobs stay until the
//! registry's garbage collection.

use std::path::Path;

use berth_oci::image::digest::Digest;
use berth_oci::image::manifest::{self, OCI_MANIFEST};
use berth_oci::image::reference::Reference;
use berth_oci::image::registry::Registry;
use berth_oci::image::Compression;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use serde_json::json;

const REGISTRY: &str = "127.0.0.1:5000";

/// One answer of the registry: its status, `Location` and body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

/// One request to the registry on a connection of its own; `path` may be
/// a whole `http://` URL, as an upload's `Location` is.
async fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let path = path.strip_prefix(&format!("http://{REGISTRY}")).unwrap_or(path);
    let stream = tokio::net::TcpStream::connect(REGISTRY)
        .await
        .unwrap_or_else(|e| panic!("the loopback registry on {REGISTRY} (scripts/provision.sh): {e}"));
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut req = hyper::Request::builder().method(method).uri(path).header("Host", REGISTRY);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = sender.send_request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let status = response.status();
    let location = response.headers().get("Location").map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, location, body }
}

/// Pushes `blob` into `repo` (a monolithic upload); its digest.
async fn push_blob(repo: &str, blob: &[u8]) -> Digest {
    let digest = Digest::of(blob);
    let started = request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[("Content-Length", "0")], vec![]).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&started.body));
    let location = started.location.expect("an upload's Location");
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{sep}digest={}", digest.as_str().replace(':', "%3A"));
    let len = blob.len().to_string();
    let headers = [("Content-Type", "application/octet-stream"), ("Content-Length", len.as_str())];
    let done = request("PUT", &put, &headers, blob.to_vec()).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&done.body));
    digest
}

/// The tar of the folder `dir` as the tar CLI makes it, owners zeroed.
fn tar_of(dir: &Path) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Writes `files` (path, content; an empty content a marker file) under `dir`.
fn files(dir: &Path, files: &[(&str, &str)]) {
    for (path, body) in files {
        let at = dir.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, body).unwrap();
    }
}

#[tokio::test]
async fn an_image_pushed_through_the_registry_api_pulls_with_its_whiteout_and_opaque_directory_applied() {
    let repo = format!("berth-test/whiteout-{}", std::process::id());
    let work = tempfile::tempdir().unwrap();
    let (lower_dir, upper_dir) = (work.path().join("lower"), work.path().join("upper"));
    files(
        &lower_dir,
        &[("etc/kept", "kept"), ("etc/gone", "gone"), ("var/cache/old", "old"), ("var/cache/sub/deep", "deep")],
    );
    files(&upper_dir, &[("etc/.wh.gone", ""), ("var/cache/.wh..wh..opq", ""), ("var/cache/new", "new")]);
    let (lower, upper) = (tar_of(&lower_dir), tar_of(&upper_dir));
    let config = serde_json::to_vec(&json!({
        "architecture": manifest::this_arch(),
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [Digest::of(&lower).to_string(), Digest::of(&upper).to_string()] },
    }))
    .unwrap();
    let (lower_gz, upper_gz) = (gzip(&lower), gzip(&upper));
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let descriptor = |media_type: &str, digest: Digest, bytes: &[u8]| json!({ "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len() });
    let image = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", push_blob(&repo, &config).await, &config),
        "layers": [
            descriptor(gz, push_blob(&repo, &lower_gz).await, &lower_gz),
            descriptor(gz, push_blob(&repo, &upper_gz).await, &upper_gz),
        ],
    });
    let image = serde_json::to_vec(&image).unwrap();
    let pushed =
        request("PUT", &format!("/v2/{repo}/manifests/1"), &[("Content-Type", OCI_MANIFEST)], image.clone()).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&pushed.body));

    let checks = async {
        let reference = Reference::parse(&format!("{REGISTRY}/{repo}:1")).unwrap();
        let registry = Registry::new();
        assert_eq!(registry.resolve(&reference).await.unwrap(), Digest::of(&config));
        let scratch = work.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let pulled = registry.pull(&reference, &scratch, 1 << 30).await.unwrap();
        assert_eq!((pulled.id.clone(), pulled.config.clone()), (Digest::of(&config), config.clone()));
        let root = work.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let applied = berth_oci::image::apply(&pulled, &root, 1 << 30).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("etc/kept")).unwrap(), "kept");
        assert!(!root.join("etc/gone").exists(), "the whiteout removed the lower layer's file");
        assert!(!root.join("etc/.wh.gone").exists() && !root.join("var/cache/.wh..wh..opq").exists());
        assert!(!root.join("var/cache/old").exists() && !root.join("var/cache/sub").exists(), "the opaque dir");
        assert_eq!(std::fs::read_to_string(root.join("var/cache/new")).unwrap(), "new");
        assert!(applied.removed >= 3, "{applied:?}");
    };
    let checked = std::panic::AssertUnwindSafe(checks).catch_unwind().await;
    // Best effort: a registry with deletes off answers 405.
    let by_digest = format!("/v2/{repo}/manifests/{}", Digest::of(&image));
    let _ = request("DELETE", &by_digest, &[], vec![]).await;
    checked.unwrap_or_else(|p| std::panic::resume_unwind(p));
}

#[tokio::test]
async fn busybox_pushed_by_docker_pulls_as_schema_2_with_its_config_digest_as_the_id() {
    let reference = Reference::parse(&format!("{REGISTRY}/berth/busybox:1.35")).unwrap();
    let asked =
        request("GET", "/v2/berth/busybox/manifests/1.35", &[("Accept", manifest::DOCKER_MANIFEST)], vec![]).await;
    assert_eq!(asked.status, StatusCode::OK, "busybox:1.35 is in the registry (scripts/provision.sh)");
    let listed: serde_json::Value = serde_json::from_slice(&asked.body).unwrap();
    assert_eq!(listed["mediaType"], manifest::DOCKER_MANIFEST);
    let config_digest = Digest::parse(listed["config"]["digest"].as_str().unwrap()).unwrap();

    let work = tempfile::tempdir().unwrap();
    let (scratch, root) = (work.path().join("scratch"), work.path().join("root"));
    std::fs::create_dir(&scratch).unwrap();
    std::fs::create_dir(&root).unwrap();
    let registry = Registry::new();
    assert_eq!(registry.resolve(&reference).await.unwrap(), config_digest);
    let pulled = registry.pull(&reference, &scratch, 1 << 30).await.unwrap();
    assert_eq!(pulled.id, config_digest, "the image id is the config's digest");
    assert_eq!(Digest::of(&pulled.config), pulled.id);
    assert!(!pulled.layers.is_empty() && pulled.layers.iter().all(|l| l.compression == Compression::Gzip));
    let applied = berth_oci::image::apply(&pulled, &root, 1 << 30).unwrap();
    assert!(root.join("bin/busybox").is_file(), "{applied:?}");
    assert!(applied.bytes > 1 << 20, "busybox's binary is there: {applied:?}");
}

/// An image of busybox's layer (fetched from the registry's berth/busybox)
/// with two layers over it: files, then a whiteout of one and an opaque
/// `var/cache` holding one new file. Its blobs (config first) and manifest.
async fn whiteout_image_over_busybox() -> (Vec<(Digest, Vec<u8>)>, Vec<u8>) {
    let listed =
        request("GET", "/v2/berth/busybox/manifests/1.35", &[("Accept", manifest::DOCKER_MANIFEST)], vec![]).await;
    assert_eq!(listed.status, StatusCode::OK, "busybox:1.35 is in the registry (scripts/provision.sh)");
    let listed: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    let base_digest = listed["layers"][0]["digest"].as_str().unwrap().to_owned();
    let base = request("GET", &format!("/v2/berth/busybox/blobs/{base_digest}"), &[], vec![]).await;
    assert_eq!(base.status, StatusCode::OK);
    let work = tempfile::tempdir().unwrap();
    let (lower_dir, upper_dir) = (work.path().join("lower"), work.path().join("upper"));
    files(&lower_dir, &[("etc/kept", "kept"), ("etc/gone", "gone"), ("var/cache/old", "old")]);
    files(&upper_dir, &[("etc/.wh.gone", ""), ("var/cache/.wh..wh..opq", ""), ("var/cache/new", "new")]);
    let (lower, upper) = (gzip(&tar_of(&lower_dir)), gzip(&tar_of(&upper_dir)));
    let config = serde_json::to_vec(&json!({
        "architecture": manifest::this_arch(),
        "os": "linux",
        "config": { "Cmd": ["sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [] },
    }))
    .unwrap();
    let blobs = vec![
        (Digest::of(&config), config),
        (Digest::of(&base.body), base.body),
        (Digest::of(&lower), lower),
        (Digest::of(&upper), upper),
    ];
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let descriptor = |media_type: &str, (digest, bytes): &(Digest, Vec<u8>)| json!({ "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len() });
    let image = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &blobs[0]),
        "layers": blobs[1..].iter().map(|b| descriptor(gz, b)).collect::<Vec<_>>(),
    });
    (blobs, serde_json::to_vec(&image).unwrap())
}

/// Writes an OCI image layout at `dir` holding one image, `name`.
fn layout_of(dir: &Path, name: &str, blobs: &[(Digest, Vec<u8>)], image: &[u8]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for (digest, bytes) in blobs.iter().chain([&(Digest::of(image), image.to_vec())]) {
        std::fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    }
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": Digest::of(image).to_string(),
            "size": image.len(),
            "annotations": { "org.opencontainers.image.ref.name": name },
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// `berth serve` with no engine reachable and the oci backend required,
/// images from `layout` and the loopback registry; its address.
/// What it said up to its listening line comes too. The caller waits for
/// the child it is handed.
#[allow(clippy::zombie_processes)]
fn serve_without_an_engine(data: &Path, layout: &Path) -> (std::process::Child, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("DOCKER_HOST", "unix:///nonexistent/berth-no-engine.sock")
        .env("BERTH_OCI", "required")
        .env("BERTH_OCI_LAYOUT", layout)
        .env("BERTH_SPARES", "");
    let (child, said, addr) = test_support::serve::spawn(&mut command);
    let addr = addr.unwrap_or_else(|| panic!("berth serve ended: {said}"));
    (child, addr, said)
}

/// `POST /v1/runs` of a sealed tool run of `image`: the status and body.
async fn run_tool(addr: &str, image: &str, script: &str) -> (StatusCode, serde_json::Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let body = json!({ "image": image, "command": ["sh", "-c", script], "network": "none" });
    let req = hyper::Request::post("/v1/runs")
        .header("Host", "berth")
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body))))
}

#[tokio::test]
async fn berth_with_no_engine_runs_sandboxes_of_registry_and_layout_images_with_their_whiteouts_on_runc() {
    let repo = format!("berth-test/shell-{}", std::process::id());
    let (blobs, image) = whiteout_image_over_busybox().await;
    for (_, bytes) in &blobs {
        push_blob(&repo, bytes).await;
    }
    let pushed =
        request("PUT", &format!("/v2/{repo}/manifests/1"), &[("Content-Type", OCI_MANIFEST)], image.clone()).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&pushed.body));
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    layout_of(&layout, "berth-test/from-layout:1", &blobs, &image);
    let (mut child, addr, said) = serve_without_an_engine(&work.path().join("data"), &layout);

    let checks = async {
        assert!(said.contains("oci backend: code runs and tool runs with no network go to runc"), "{said}");
        let script = "cat /etc/kept; echo; test -e /etc/gone || echo gone; ls /var/cache";
        for name in [format!("{REGISTRY}/{repo}:1"), "berth-test/from-layout:1".to_owned()] {
            let (status, run) = run_tool(&addr, &name, script).await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {run}");
            assert_eq!(run["status"], "succeeded", "{name}: {run}");
            assert_eq!(run["runtime"], "runc", "{name}: {run}");
            assert_eq!(run["stdout"], "kept\ngone\nnew\n", "{name}: the whiteouts, seen from inside: {run}");
        }
        let (status, refused) = run_tool(&addr, "busybox:1.35", "true").await;
        assert!(status.is_client_error(), "{status} {refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not in the layout") && message.contains("no registry"), "{message}");
    };
    let checked = std::panic::AssertUnwindSafe(checks).catch_unwind().await;
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = request("DELETE", &format!("/v2/{repo}/manifests/{}", Digest::of(&image)), &[], vec![]).await;
    checked.unwrap_or_else(|p| std::panic::resume_unwind(p));
}
