//! README.md's examples, run as written: every ```sh block not marked
//! `<!-- not run: why -->` on the line before it, in order, in one shell,
//! against a live `berth serve` on the address they name
//! (127.0.0.1:8787), with `berth` on `PATH`. Placeholders take their value
//! from the answers before them: `RUN_ID` (the last run named), `SANDBOX_ID`
//! and `sbx…` (the last sandbox), `PID` (the last process started). Every
//! answer must come from a server that did not fail: no connection refused,
//! no 5xx, no client exit code saying the server failed or was not there.

use std::process::Command;

/// The blocks to run, each as its lines.
fn runnable_blocks(readme: &str) -> Vec<String> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "```sh" {
            let marked = i > 0 && lines[i - 1].starts_with("<!-- not run");
            let end = lines[i + 1..].iter().position(|l| *l == "```").map(|n| i + 1 + n).expect("a closed block");
            if !marked {
                blocks.push(lines[i + 1..end].join("\n"));
            }
            i = end;
        }
        i += 1;
    }
    blocks
}

/// A block with its placeholders as the shell variables the prelude keeps.
fn filled(block: &str) -> String {
    block
        .replace("RUN_ID", "$RUN_ID")
        .replace("SANDBOX_ID", "$SANDBOX_ID")
        .replace("sbx…", "$SANDBOX_ID")
        .replace("PID", "$PID")
}

/// The shell the blocks run in: `curl` and `berth` wrapped to keep each
/// answer's status in `$STATUSES` and the ids it names, printing what the
/// plain commands print.
const PRELUDE: &str = r#"
pick() {
    local v
    v=$(grep -o '"id": *"run_[0-9a-f]*"' <<<"$1" | tail -1 | grep -o 'run_[0-9a-f]*'); [ -n "$v" ] && RUN_ID=$v
    v=$(grep -o '"sandbox_id": *"sbx[0-9a-f]*"' <<<"$1" | tail -1 | grep -o 'sbx[0-9a-f]*'); [ -n "$v" ] && SANDBOX_ID=$v
    v=$(grep -o '"pid": *[0-9]*' <<<"$1" | tail -1 | grep -o '[0-9]*$'); [ -n "$v" ] && PID=$v
    true
}
curl() {
    local out status
    out=$(command curl -m 20 -w '\n__status__ %{http_code}' "$@")
    status=${out##*__status__ }
    out=${out%__status__ *}
    printf '%s' "$out"
    echo "curl $status $*" >>"$STATUSES"
    pick "$out"
}
berth() {
    local out code
    out=$(timeout 20 "$(type -P berth)" "$@" 2>&1)
    code=$?
    printf '%s\n' "$out"
    echo "berth $code $*" >>"$STATUSES"
    pick "$out"
    return $code
}
"#;

#[test]
fn the_readmes_examples_run_as_written_against_a_live_server() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(blocks.len() >= 5, "the walk-through, metrics, sandboxes, the client and the oci runs: {blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_berth"));
    serve.args(["serve", "--listen", "127.0.0.1:8787", "--data"]).arg(dir.path().join("data"));
    let (mut child, said, addr) = test_support::serve::spawn(serve.env("BERTH_SPARES", ""));
    assert_eq!(addr.as_deref(), Some("127.0.0.1:8787"), "berth serve on the README's address: {said}");

    let statuses = dir.path().join("statuses");
    let script = format!("{PRELUDE}\n{}\n", blocks.iter().map(|b| filled(b)).collect::<Vec<_>>().join("\n"));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_berth")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("STATUSES", &statuses)
        .env_remove("BERTH_URL")
        .env_remove("BERTH_TOKEN")
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(&statuses).unwrap_or_default();
    println!("{said}\n{log}");

    let answers: Vec<(&str, i64, &str)> = log
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            Some((parts.next()?, parts.next()?.parse().ok()?, parts.next().unwrap_or("")))
        })
        .collect();
    assert!(answers.len() >= 40, "every example's answer is logged:\n{log}");
    // Each answer is what the example means: a success (the client's
    // `exit 3` example excepted), never a refusal of a stale example.
    for (tool, status, args) in &answers {
        let fine = match *tool {
            "curl" => (200..400).contains(status),
            _ => {
                *status == 0
                    || [(3, "exit 3"), (5, "exit 5")].iter().any(|(c, said)| status == c && args.contains(said))
            }
        };
        assert!(fine, "{tool} {args} answered {status}:\n{said}");
    }
    // What the README says they print.
    for expected in ["{\"n\":3}", "\"exit_code\":3,\"stdout\":\"hi\\n\"", "hi\n3\n", "n=3\n", "\"runtime\":\"runc\""] {
        assert!(said.contains(expected), "{expected:?} in:\n{said}");
    }
}

#[test]
fn a_block_marked_not_run_is_left_out_and_placeholders_become_the_answers_values() {
    let readme = "x\n<!-- not run: it serves -->\n```sh\nberth serve\n```\n```sh\ncurl $B/v1/runs/RUN_ID\n```\n";
    let blocks = runnable_blocks(readme);
    assert_eq!(blocks, ["curl $B/v1/runs/RUN_ID"]);
    assert_eq!(filled("S=sbx…; curl .../processes/PID/RUN_ID"), "S=$SANDBOX_ID; curl .../processes/$PID/$RUN_ID");
}
