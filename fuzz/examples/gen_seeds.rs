//! Writes the seed corpora, `seeds/<target>/<name>`, from the real frame
//! encoder and from plain Engine API JSON. Deterministic: running it again
//! rewrites the same files.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds [-- OUT_DIR]
//! ```
//!
//! Decoder seeds start with the chunking prefix of `engine_api_fuzz::Input`:
//! a first byte `0x00` means "one chunk, default bound" and the rest is the body.

use std::fs;
use std::path::{Path, PathBuf};

use engine_api::decode::mux::encode_frame;
use engine_api_fuzz::encode_input;
use serde_json::json;

fn frames(list: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (stream, payload) in list {
        encode_frame(*stream, payload, &mut body);
    }
    body
}

fn lines(values: &[serde_json::Value], sep: &str) -> Vec<u8> {
    values.iter().map(|v| format!("{v}{sep}")).collect::<String>().into_bytes()
}

fn mux() -> Vec<(&'static str, Vec<u8>)> {
    let logs = frames(&[(1, b"hello\n"), (2, b"oops\n"), (1, b"bye\n")]);
    let mut truncated = frames(&[(1, b"0123456789")]);
    truncated.truncate(12);
    let mut too_large = vec![1, 0, 0, 0];
    too_large.extend_from_slice(&5000u32.to_be_bytes());
    too_large.extend_from_slice(b"xxxx");
    vec![
        ("logs", encode_input(0, &[], &logs)),
        // Cut inside headers and payloads, with empty pushes.
        ("logs_chunked", encode_input(0, &[3, 8, 1, 0, 13], &logs)),
        ("empty_frames", encode_input(0, &[], &frames(&[(1, b""), (2, b""), (0, b"in"), (1, b"")]))),
        ("systemerr", encode_input(0, &[10, 10], &frames(&[(1, b"partial"), (3, b"exec failed: no such file\n")]))),
        ("truncated", encode_input(0, &[], &truncated)),
        ("too_large", encode_input(0, &[], &too_large)),
        ("tty_bytes", encode_input(0, &[], b"hello world, this is a terminal\r\n")),
        // Knob 4 picks a bound of 8 bytes: the second frame is one byte over.
        ("bound", encode_input(4, &[5], &frames(&[(1, b"12345678"), (2, b"123456789")]))),
    ]
}

fn json_lines() -> Vec<(&'static str, Vec<u8>)> {
    let pull = lines(
        &[
            json!({"status": "Pulling from library/busybox", "id": "1.36"}),
            json!({"status": "Downloading", "progressDetail": {"current": 1024, "total": 2048}, "id": "a1b2c3"}),
            json!({"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}),
        ],
        "\r\n",
    );
    let mut events = lines(
        &[
            json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc"}, "time": 1700000000}),
            json!({"Type": "container", "Action": "die", "Actor": {"ID": "abc", "Attributes": {"exitCode": "0"}}}),
        ],
        "\n",
    );
    events.extend_from_slice(br#"{"Type":"network","Action":"connect"}"#);
    let mut long = vec![b'x'; 70];
    long.extend_from_slice(b"\n{\"a\":1}\n");
    vec![
        ("pull_crlf", encode_input(0, &[], &pull)),
        // Cut at odd places, with single-byte chunks.
        ("pull_chunked", encode_input(0, &[7, 1, 64, 2], &pull)),
        ("events_no_final_newline", encode_input(0, &[16], &events)),
        ("json_seq_blank_lines", encode_input(0, &[], b"\n\n\x1e{\"a\":1}\n\r\n\x1e{\"b\":2}\n  \n")),
        ("back_to_back", encode_input(0, &[], b"{\"a\":1}{\"a\":2}\r\n{\"a\":3}")),
        // Knob 8 picks a bound of 64 bytes: the first line is over it.
        ("too_long", encode_input(8, &[30], &long)),
    ]
}

fn raw() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("terminal", encode_input(0, &[], b"$ ls\r\nbin  etc  usr\r\n\x1b[32mok\x1b[0m\r\nprogress 50%\r")),
        // Bytes that look like a frame header pass through as they are.
        ("frame_lookalike", encode_input(0, &[8, 0, 1], &frames(&[(1, b"hello")]))),
    ]
}

fn hijack() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("upgraded_with_first_output", encode_input(0, &[], b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x03hi\n")),
        ("hijacked_200", encode_input(0, &[], b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\nout")),
        ("refused_with_length", encode_input(0, &[20, 7], b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"message\":\"No such exec\"}\nnext")),
        ("refused_chunked", encode_input(0, &[9, 3, 30], b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mes\r\n16\r\nsage\":\"No such exec\"}\n\r\n0\r\nX-T: 1\r\n\r\n")),
    ]
}

fn models() -> Vec<(&'static str, Vec<u8>)> {
    let doc = |v: serde_json::Value| format!("{v}\n").into_bytes();
    let sample = |total: u64, system: u64| {
        json!({
            "read": "2024-01-01T00:00:01Z", "preread": "2024-01-01T00:00:00Z",
            "id": "abc", "name": "/web",
            "pids_stats": {"current": 3, "limit": 4096},
            "cpu_stats": {"cpu_usage": {"total_usage": total, "percpu_usage": [total / 2, total / 2],
                          "usage_in_kernelmode": 10, "usage_in_usermode": 20},
                          "system_cpu_usage": system, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1000}, "system_cpu_usage": 1000, "online_cpus": 2},
            "memory_stats": {"usage": 1000, "max_usage": 2000, "limit": 4096,
                             "stats": {"total_inactive_file": 300, "inactive_file": 100}, "failcnt": 0},
            "networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 200, "rx_packets": 1, "tx_packets": 2},
                         "eth1": {"rx_bytes": 300, "tx_bytes": 400}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "write", "value": 8192},
                {"major": 8, "minor": 0, "op": "Total", "value": 12288}]}
        })
    };
    let mut stats_stream = doc(sample(1500, 2000));
    stats_stream.extend(doc(sample(2500, 4000)));
    vec![
        (
            "container_inspect.json",
            doc(json!({
                "Id": "4fa6e0f0c678", "Name": "/web", "Created": "2024-01-01T00:00:00Z", "Image": "sha256:abc",
                "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false,
                          "OOMKilled": false, "Dead": false, "Pid": 1234, "ExitCode": 0, "Error": "",
                          "StartedAt": "2024-01-01T00:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z",
                          "Health": {"Status": "healthy", "FailingStreak": 0,
                                     "Log": [{"Start": "s", "End": "e", "ExitCode": 0, "Output": "ok"}]}},
                "Config": {"Hostname": "web", "Tty": false, "Env": ["A=1"], "Cmd": ["sleep", "60"],
                           "Image": "busybox", "Entrypoint": null, "Labels": {"berth.run": "r1"},
                           "ExposedPorts": {"80/tcp": {}},
                           "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}},
                "HostConfig": {"Memory": 1048576, "NanoCpus": 500000000, "CapDrop": ["ALL"],
                               "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                               "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                               "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}},
                "NetworkSettings": {"Networks": {"bridge": {"NetworkID": "n1", "IPAddress": "172.17.0.2",
                                                            "Gateway": "172.17.0.1", "Aliases": null}},
                                    "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "81/tcp": null}},
                "RestartCount": 0
            })),
        ),
        (
            "container_inspect_podman.json",
            doc(json!({"id": "abc", "State": {"Status": "stopping", "OomKilled": true, "Pid": "12", "ExitCode": 1.5},
                       "RestartCount": "3"})),
        ),
        (
            "container_list.json",
            doc(json!([
                {"Id": "abc", "Names": ["/web"], "Image": "busybox", "Created": 1700000000,
                 "State": "running", "Status": "Up 3 seconds", "Labels": {"a": "b"}},
                {"id": "def", "Names": null, "State": "stopping", "Created": "1700000000", "Labels": null}
            ])),
        ),
        ("stats.json", doc(sample(1500, 2000))),
        ("stats_stream.jsonl", stats_stream),
        (
            "stats_cgroup_v2_one_shot.json",
            doc(json!({"cpu_stats": {"cpu_usage": {"total_usage": 5}, "system_cpu_usage": 10},
                       "precpu_stats": {"cpu_usage": {"total_usage": 0}},
                       "memory_stats": {"usage": 500, "stats": {"inactive_file": 600}},
                       "networks": null, "blkio_stats": {"io_service_bytes_recursive": null}})),
        ),
        (
            "events.jsonl",
            lines(
                &[
                    json!({"Type": "container", "Action": "health_status: healthy", "scope": "local",
                           "Actor": {"ID": "abc", "Attributes": {"name": "web"}},
                           "time": 1700000000, "timeNano": 1700000000123456789i64}),
                    json!({"Type": "network", "Action": "connect", "Actor": {"id": "n1", "Attributes": null},
                           "time": "1700000001"}),
                ],
                "\n",
            ),
        ),
        (
            "image_progress.jsonl",
            lines(
                &[
                    json!({"status": "Downloading", "id": "a1", "progress": "[=>   ]",
                           "progressDetail": {"current": 1, "total": "2"}}),
                    json!({"stream": "Loaded image: busybox:1.36\n"}),
                    json!({"errorDetail": {"code": 1, "message": "denied"}, "error": "denied"}),
                ],
                "\n",
            ),
        ),
        (
            "exec_inspect.json",
            doc(json!({"ID": "e1", "Running": false, "ExitCode": 0, "ContainerID": "abc", "Pid": 77,
                       "ProcessConfig": {"tty": false, "entrypoint": "sh", "arguments": ["-c", "true"], "user": ""}})),
        ),
        ("exec_created.json", doc(json!({"Id": "e1"}))),
        ("container_created.json", doc(json!({"Id": "abc", "Warnings": null}))),
        ("wait.json", doc(json!({"StatusCode": 137, "Error": {"Message": "killed"}}))),
        (
            "path_stat.json",
            doc(json!({"name": "etc", "size": 4096, "mode": 2147484141u32,
                                      "mtime": "2024-01-01T00:00:00Z", "linkTarget": ""})),
        ),
        (
            "image_inspect.json",
            doc(json!({"Id": "sha256:abc", "RepoTags": ["busybox:1.36"], "RepoDigests": null,
                       "Created": "2024-01-01T00:00:00Z", "Size": 4261550, "Architecture": "amd64", "Os": "linux",
                       "Config": {"Cmd": ["sh"], "Entrypoint": null, "Env": ["PATH=/bin"], "Labels": null,
                                  "Healthcheck": {"Test": ["NONE"]}}})),
        ),
        ("image_list.json", doc(json!([{"Id": "sha256:abc", "RepoTags": null, "Created": 1700000000, "Size": "42"}]))),
        ("image_deleted.json", doc(json!([{"Untagged": "busybox:1.36"}, {"Deleted": "sha256:abc"}]))),
        (
            "network.json",
            doc(json!({"Id": "n1", "Name": "berth-run", "Driver": "bridge", "Scope": "local", "Internal": true,
                       "Attachable": false, "Labels": {"berth": "1"},
                       "Containers": {"abc": {"Name": "web", "IPv4Address": "172.18.0.2/16"}}})),
        ),
        ("network_list.json", doc(json!([{"Id": "n1", "Name": "bridge", "Containers": null}]))),
        (
            "volume_list.json",
            doc(json!({"Volumes": [{"Name": "v1", "Driver": "local", "Mountpoint": "/var/lib/v1",
                                                     "Labels": null, "CreatedAt": "2024-01-01T00:00:00Z"}],
                                        "Warnings": null})),
        ),
        ("pruned.json", doc(json!({"ContainersDeleted": ["abc"], "SpaceReclaimed": 1024, "NetworksDeleted": null}))),
        (
            "version.json",
            doc(json!({"Version": "27.0.3", "ApiVersion": "1.46", "MinAPIVersion": "1.24", "Os": "linux",
                       "Arch": "amd64", "KernelVersion": "6.1.0", "GitCommit": "7d4bcd8"})),
        ),
        (
            "info.json",
            doc(json!({"ID": "x", "Name": "host", "ServerVersion": "27.0.3", "Containers": 3, "ContainersRunning": 1,
                       "ContainersPaused": 0, "ContainersStopped": 2, "Images": 5, "Driver": "overlay2",
                       "CgroupDriver": "systemd", "CgroupVersion": "2", "NCPU": 2, "MemTotal": 25000000000i64,
                       "OperatingSystem": "Debian", "KernelVersion": "6.1.0", "DockerRootDir": "/var/lib/docker",
                       "SecurityOptions": ["name=seccomp,profile=builtin"]})),
        ),
    ]
}

fn write(root: &Path, target: &str, seeds: Vec<(&str, Vec<u8>)>) -> std::io::Result<()> {
    let dir = root.join(target);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    write(&root, "mux", mux())?;
    write(&root, "json_lines", json_lines())?;
    write(&root, "raw", raw())?;
    write(&root, "models", models())?;
    write(&root, "hijack", hijack())?;
    println!("seeds written under {}", root.display());
    Ok(())
}
