//! The layering rules of ARCHITECTURE.md that a machine can check: which
//! crate may depend on which (read from `cargo metadata`), and which names
//! a crate's sources may not use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Each workspace package's normal (not dev, not build) dependencies.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    meta["packages"]
        .as_array()
        .expect("a package list")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("a dependency list")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("a name").to_owned())
                .collect();
            (p["name"].as_str().expect("a name").to_owned(), deps)
        })
        .collect()
}

fn assert_none_of(package: &str, forbidden: &[&str]) {
    let all = dependencies();
    let deps = all.get(package).unwrap_or_else(|| panic!("no package {package} in {:?}", all.keys()));
    let found: Vec<&String> = deps.iter().filter(|d| forbidden.contains(&d.as_str())).collect();
    assert!(found.is_empty(), "{package} depends on {found:?}, which its layer must not know");
}

const ENGINES: &[&str] = &["engine-api", "berth-docker", "berth-oci", "berth-swarm"];
/// What serves berth's HTTP API: the front ends' alone.
const SERVING: &[&str] = &["axum", "tower", "tower-http", "utoipa", "tokio-tungstenite"];
/// An HTTP client: the engine protocol's, and a registry pull's.
const CLIENT: &[&str] = &["hyper", "hyper-util", "http"];
const HTTP: &[&str] = &["axum", "hyper", "hyper-util", "tower", "tower-http", "http", "utoipa", "tokio-tungstenite"];

#[test]
fn the_core_names_no_http_crate_no_openapi_crate_and_no_engine() {
    assert_none_of("berth-core", &[ENGINES, HTTP, &["berth-api"]].concat());
}

#[test]
fn the_front_ends_name_the_core_and_no_engine() {
    assert_none_of("berth-api", ENGINES);
    assert!(dependencies()["berth-api"].contains(&"berth-core".to_owned()));
}

#[test]
fn the_engine_client_knows_nothing_of_berth() {
    assert_none_of("engine-api", &["berth-core", "berth-api", "berth-docker", "berth-oci", "berth-swarm", "berth"]);
}

#[test]
fn the_backends_know_the_core_and_no_front_end() {
    for backend in ["berth-docker", "berth-oci", "berth-swarm"] {
        assert_none_of(backend, &[&["berth-api"], SERVING].concat());
    }
    // The engine protocol is engine-api's: a backend over it names no HTTP client.
    for backend in ["berth-docker", "berth-swarm"] {
        assert_none_of(backend, CLIENT);
    }
    assert_none_of("berth-oci", &["engine-api", "berth-docker", "berth-swarm"]);
    assert_none_of("berth-swarm", &["berth-oci"]);
}

#[test]
fn the_sandbox_protocol_and_its_helper_know_nothing_else_of_berth() {
    let all = dependencies();
    for package in ["berth-sandbox-wire", "berth-sandboxd"] {
        let berth: Vec<&String> =
            all[package].iter().filter(|d| d.starts_with("berth") && *d != "berth-sandbox-wire").collect();
        assert!(berth.is_empty(), "{package} depends on {berth:?}");
        assert_none_of(package, &[ENGINES, HTTP, &["tokio"]].concat());
    }
}

#[test]
fn only_the_binary_and_the_test_support_name_concrete_backends() {
    for (package, deps) in dependencies() {
        // The swarm backend acts on each node through the docker backend.
        if ["berth", "test-support", "berth-docker", "berth-oci", "berth-swarm"].contains(&package.as_str()) {
            continue;
        }
        let named: Vec<&String> = deps.iter().filter(|d| ["berth-docker", "berth-oci"].contains(&d.as_str())).collect();
        assert!(named.is_empty(), "{package} names the backends {named:?}");
    }
}

fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a readable source");
            out.push((path, text));
        }
    }
    out
}

/// Whether `code` holds `name` as a whole: not as the start of a longer
/// identifier (`Engine` in `EngineError`).
fn names_word(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let next = code[at + name.len()..].chars().next();
        !name.ends_with(|c: char| c.is_alphanumeric() || c == '_')
            || !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Lines of `crate_dir`'s sources that name one of `names`, comments left out.
fn naming(crate_dir: &str, names: &[&str]) -> Vec<String> {
    naming_below(&Path::new(env!("CARGO_MANIFEST_DIR")).join(crate_dir).join("src"), names)
}

/// Lines of the sources below `root` that name one of `names`, comments left out.
fn naming_below(root: &Path, names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(root) {
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(name) = names.iter().find(|name| names_word(code, name)) {
                found.push(format!("{}:{}: {name}: {code}", path.display(), n + 1));
            }
        }
    }
    found
}

#[test]
fn the_front_ends_reach_the_engine_and_the_store_only_through_the_core() {
    let found = naming(
        "crates/berth-api",
        &[
            "backend::Backend",
            "dyn Engine",
            "berth_core::store",
            "Store::",
            "berth_core::runs::Runs",
            "Pools",
            ".backend.",
        ],
    );
    assert!(found.is_empty(), "the front ends reach past the core:\n{}", found.join("\n"));
}

#[test]
fn the_core_sees_no_http_type() {
    let found = naming("crates/berth-core", &["axum", "hyper", "http::", "utoipa", "StatusCode"]);
    assert!(found.is_empty(), "the core names HTTP:\n{}", found.join("\n"));
}

#[test]
fn the_model_imports_nothing_of_berth_but_itself() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/berth-core/src/model");
    let found: Vec<String> =
        naming_below(&model, &["crate::"]).into_iter().filter(|line| !line.contains("crate::model::")).collect();
    assert!(found.is_empty(), "the model names other layers:\n{}", found.join("\n"));
}
