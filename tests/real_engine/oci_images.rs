//! Images unpacked for the `oci` backend from the engine's image store: the
//! saved image (`GET /images/{name}/get`) split and its layers applied, in
//! order and with their whiteouts, give the same tree the engine itself
//! makes for a container of the image; the image cache keeps them by id.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use engine_api::models::ContainerConfig;
use engine_api::{Docker, RemoveOptions};
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;

fn docker() -> Docker {
    Docker::from_env().expect("DOCKER_HOST or the default socket")
}

/// The image saved by the engine, written to `to`.
async fn save(image: &str, to: &Path) {
    use std::io::Write;
    let mut body = docker().export_image(image).await.unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(to).unwrap());
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk.unwrap()).unwrap();
    }
    file.flush().unwrap();
}

/// The engine's own tree of `/` for a container of `image`, created and
/// never started, unpacked into `dir` by tar.
async fn engine_tree(image: &str, dir: &Path) {
    let docker = docker();
    let create = ContainerConfig {
        image: Some(image.into()),
        cmd: Some(vec!["true".into()]),
        labels: Some([("berth-oci-test".to_owned(), "1".to_owned())].into()),
        ..Default::default()
    };
    let name = format!("berth-oci-images-{}-{}", std::process::id(), image.replace([':', '/', '.'], "-"));
    let created = docker.create_container(Some(&name), &create).await.unwrap();
    let (_, mut body) = docker.get_archive(&created.id, "/").await.unwrap();
    let mut tar = tokio::process::Command::new("tar")
        .args(["-x", "--numeric-owner", "-p", "-C"])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = tar.stdin.take().unwrap();
    while let Some(chunk) = body.next().await {
        stdin.write_all(&chunk.unwrap()).await.unwrap();
    }
    drop(stdin);
    let ok = tar.wait().await.unwrap().success();
    docker.remove_container(&created.id, RemoveOptions { force: true, volumes: true }).await.unwrap();
    assert!(ok, "tar unpacked the engine's tree");
}

/// Each path under `root` with its type, mode, owner, size and link target.
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
            } else {
                format!("file {:o} {}:{} {}", m.mode() & 0o7777, m.uid(), m.gid(), m.len())
            };
            out.insert(rel, what);
        }
    }
    out
}

/// What the engine adds to every container's tree (its mount points and
/// the files it binds over), absent from the image's layers.
const ENGINE_ONLY: &[&str] = &[
    ".dockerenv",
    "dev",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
];

async fn unpacked_equals_the_engines_tree(image: &str) -> berth_oci::layers::Applied {
    let work = tempfile::tempdir().unwrap();
    let (saved, scratch, root, theirs) = (
        work.path().join("saved.tar"),
        work.path().join("scratch"),
        work.path().join("root"),
        work.path().join("engine"),
    );
    for d in [&scratch, &root, &theirs] {
        std::fs::create_dir(d).unwrap();
    }
    save(image, &saved).await;
    let (manifest, layers) = berth_oci::saved::split(std::fs::File::open(&saved).unwrap(), &scratch).unwrap();
    let inspected = docker().inspect_image(image).await.unwrap();
    assert_eq!(manifest.image_id().as_deref(), Some(inspected.id.as_str()), "the config's digest is the image id");
    let applied = berth_oci::saved::unpack(&layers, &root, 4 << 30).unwrap();
    engine_tree(image, &theirs).await;

    let (mine, engine) = (listing(&root), listing(&theirs));
    let mut differ = Vec::new();
    for (path, what) in &engine {
        let engine_only = ENGINE_ONLY.iter().any(|e| path == e || path.starts_with(&format!("{e}/")));
        match mine.get(path) {
            None if engine_only => {}
            None => differ.push(format!("{path}: only in the engine's tree ({what})")),
            // A directory the engine made its mount point under may differ in mode.
            Some(m) if m != what && !engine_only => differ.push(format!("{path}: {m} here, {what} in the engine's")),
            Some(_) => {}
        }
    }
    for (path, what) in &mine {
        if !engine.contains_key(path) {
            differ.push(format!("{path}: only here ({what})"));
        }
    }
    assert!(differ.is_empty(), "{image}: {differ:#?}");
    applied
}

#[tokio::test]
async fn busybox_unpacked_from_the_engines_store_is_the_tree_the_engine_makes() {
    let applied = unpacked_equals_the_engines_tree("busybox:1.35").await;
    assert!(applied.bytes > 1 << 20, "busybox's binary is there: {applied:?}");
}

#[tokio::test]
async fn an_upper_layer_with_whiteouts_and_an_opaque_directory_unpacks_as_the_engine_does() {
    // An image of two layers: busybox's, and one that removes a file, and
    // empties a directory and fills it again (the engine's overlay then
    // writes an opaque marker), made by the docker CLI as a test fixture.
    let tag = format!("berth-test/whiteouts:{}", std::process::id());
    let name = format!("berth-oci-images-whiteouts-{}", std::process::id());
    let script = "test -d /usr/bin && rm /bin/ls && rm -rf /usr && mkdir -p /usr/local && echo new > /usr/local/only";
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cli(&["run", "--name", &name, "--network", "none", "busybox:1.35", "sh", "-c", script]);
    cli(&["commit", &name, &tag]);
    cli(&["rm", "-f", &name]);
    let applied = std::panic::AssertUnwindSafe(unpacked_equals_the_engines_tree(&tag)).catch_unwind().await;
    cli(&["rmi", &tag]);
    let applied = applied.unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert!(applied.removed >= 2, "the whiteout and the opaque directory removed what was below: {applied:?}");
}

/// What the cache's `save` is given: the engine's saved archive of `image`.
fn saving(
    image: String,
) -> impl FnOnce(std::path::PathBuf) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
{
    move |to| {
        Box::pin(async move {
            save(&image, &to).await;
            Ok(())
        })
    }
}

#[tokio::test]
async fn the_cache_unpacks_by_image_id_so_a_moved_tag_is_a_new_image_and_a_stale_id_is_refused() {
    let pid = std::process::id();
    let tag = format!("berth-test/moving:{pid}");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let id_of = |image: String| async move { docker().inspect_image(&image).await.unwrap().id };
    cli(&["tag", "busybox:1.35", &tag]);
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = berth_oci::cache::ImageCache::open(dir.path(), 1 << 30).unwrap();
    let first_id = id_of(tag.clone()).await;
    let (a, b) = tokio::join!(cache.get(&first_id, saving(tag.clone())), cache.get(&first_id, saving(tag.clone())));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.root, b.root);
    assert!(a.root.join("bin/busybox").is_file());

    // The tag moves to an image with one more file.
    let name = format!("berth-oci-images-moving-{pid}");
    cli(&["run", "--name", &name, "--network", "none", "busybox:1.35", "sh", "-c", "echo moved > /moved"]);
    cli(&["commit", &name, &tag]);
    cli(&["rm", "-f", &name]);
    let second_id = id_of(tag.clone()).await;
    let checks = async {
        assert_ne!(first_id, second_id);
        let moved = cache.get(&second_id, saving(tag.clone())).await.unwrap();
        assert!(moved.root.join("moved").is_file() && !a.root.join("moved").exists());
        // A cache that never saw the first image, asked for it by the tag that moved: refused.
        let fresh = tempfile::tempdir().unwrap();
        let (other, _) = berth_oci::cache::ImageCache::open(fresh.path(), 1 << 30).unwrap();
        let stale = other.get(&first_id, saving(tag.clone())).await;
        assert!(matches!(stale, Err(berth_oci::cache::CacheError::Moved { .. })), "{:?}", stale.err());
    };
    let checked = std::panic::AssertUnwindSafe(checks).catch_unwind().await;
    cli(&["rmi", &tag]);
    checked.unwrap_or_else(|p| std::panic::resume_unwind(p));
}
