//! Faults injected at the transport seam, over excerpts of the recordings:
//! each broken exchange gives a typed error, nothing hangs, and the next
//! call on the same client works (nothing was left half-done).

use std::time::Duration;

use bytes::Bytes;
use engine_api::transport::{Fault, FaultyTransport, ReplayTransport};
use engine_api::{ApiVersion, Docker, Error, LogsOptions, Output, StreamKind, WaitCondition};
use futures_util::StreamExt;

use crate::harness::exchanges_of;

const LOGS: &str = "/logs?";
const OPTS: LogsOptions = LogsOptions {
    follow: false,
    stdout: true,
    stderr: true,
    since: None,
    until: None,
    timestamps: false,
    tail: engine_api::Tail::All,
    tty: Some(false),
};

/// A client over `times` copies of the lifecycle scenario's exchange for `target`.
fn client(target: &str, times: usize) -> (Docker, FaultyTransport, ReplayTransport) {
    let replay = ReplayTransport::new(exchanges_of("container_lifecycle", &[(target, times)]), "excerpt").unwrap();
    let faulty = FaultyTransport::new(replay.clone());
    (Docker::new(faulty.clone()).with_version(recorded_version()), faulty, replay)
}

/// The version the recording was made with (every target names it).
fn recorded_version() -> ApiVersion {
    let cassette = exchanges_of("container_lifecycle", &[(LOGS, 1)]);
    let target = &cassette.exchanges[0].request.target;
    target.trim_start_matches("/v").split('/').next().unwrap().parse().unwrap()
}

fn container_id() -> String {
    let cassette = exchanges_of("container_lifecycle", &[(LOGS, 1)]);
    let target = &cassette.exchanges[0].request.target;
    target.split("/containers/").nth(1).unwrap().split('/').next().unwrap().to_owned()
}

async fn read_logs(docker: &Docker) -> (Vec<Output>, Option<Error>) {
    let run = async {
        let mut stream = docker.logs(&container_id(), &OPTS).await?;
        let mut got = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(o) => got.push(o),
                Err(e) => return Ok::<_, Error>((got, Some(e))),
            }
        }
        Ok((got, None))
    };
    match tokio::time::timeout(Duration::from_secs(5), run).await.expect("nothing hangs") {
        Ok(result) => result,
        Err(e) => (Vec::new(), Some(e)),
    }
}

/// A logs call on the client gets the whole, correct answer.
async fn logs_are_whole(docker: &Docker) {
    let (outputs, err) = read_logs(docker).await;
    assert!(err.is_none(), "{err:?}");
    let of = |kind| -> Vec<u8> { outputs.iter().filter(|o| o.stream == kind).flat_map(|o| o.data.to_vec()).collect() };
    assert_eq!(of(StreamKind::Stdout), b"out\nmore\n");
    assert_eq!(of(StreamKind::Stderr), b"err\n");
}

/// The next call on the same client still gets the whole answer, and the
/// replay went as recorded otherwise.
async fn next_call_is_whole(docker: &Docker, replay: &ReplayTransport) {
    logs_are_whole(docker).await;
    replay.finish().unwrap();
}

#[tokio::test]
async fn a_logs_body_cut_inside_a_frame_is_a_truncation_error() {
    let (docker, faulty, replay) = client(LOGS, 2);
    faulty.inject(LOGS, Fault::Truncate { after: 8 + 2 });
    let (outputs, err) = read_logs(&docker).await;
    assert_eq!(outputs.len(), 1, "the two bytes that came are handed out");
    assert!(
        matches!(
            err,
            Some(Error::Decode {
                source: engine_api::DecodeError::Output(engine_api::decode::mux::MuxError::Truncated { .. }),
                ..
            })
        ),
        "{err:?}"
    );
    next_call_is_whole(&docker, &replay).await;
}

#[tokio::test]
async fn a_connection_broken_mid_stream_is_a_transport_error() {
    let (docker, faulty, replay) = client(LOGS, 2);
    // Inside the first frame (8 header bytes and a 4-byte payload).
    faulty.inject(LOGS, Fault::Cut { after: 10 });
    let (outputs, err) = read_logs(&docker).await;
    assert!(outputs.iter().map(|o| o.data.len()).sum::<usize>() <= 2, "{outputs:?}");
    assert!(matches!(err, Some(Error::Transport(_))), "{err:?}");
    next_call_is_whole(&docker, &replay).await;
}

#[tokio::test]
async fn garbage_frames_are_a_decode_error_not_output() {
    let (docker, faulty, replay) = client(LOGS, 2);
    faulty.inject(LOGS, Fault::Garbage { at: 12, bytes: Bytes::from_static(b"\x07\x00\x00\x00garbage!") });
    let (outputs, err) = read_logs(&docker).await;
    assert_eq!(outputs.len(), 1, "only the frame before the garbage");
    assert_eq!(outputs[0].data.len(), 4, "\"out\\n\" or \"err\\n\", whichever the daemon sent first");
    assert!(matches!(err, Some(Error::Decode { .. })), "{err:?}");
    next_call_is_whole(&docker, &replay).await;
}

#[tokio::test]
async fn late_chunks_still_arrive_whole() {
    let (docker, faulty, replay) = client(LOGS, 2);
    faulty.inject(LOGS, Fault::Delay { delay: Duration::from_millis(30) });
    logs_are_whole(&docker).await;
    next_call_is_whole(&docker, &replay).await;
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error() {
    let (docker, faulty, replay) = client(LOGS, 1);
    faulty.inject(LOGS, Fault::Drop);
    let (_, err) = read_logs(&docker).await;
    assert!(matches!(err, Some(Error::Transport(_))), "{err:?}");
    next_call_is_whole(&docker, &replay).await;
}

#[tokio::test]
async fn a_daemon_that_never_answers_is_a_timeout() {
    let (docker, faulty, replay) = client(LOGS, 1);
    let docker = docker.with_timeout(Duration::from_millis(200));
    faulty.inject(LOGS, Fault::Stall);
    let (_, err) = read_logs(&docker).await;
    assert!(matches!(err, Some(Error::Timeout { .. })), "{err:?}");
    next_call_is_whole(&docker, &replay).await;
}

#[tokio::test]
async fn a_wait_cut_before_its_exit_code_is_an_error_not_an_exit() {
    let (docker, faulty, replay) = client("/wait?", 2);
    faulty.inject("/wait?", Fault::Cut { after: 3 });
    let waiting = docker.wait_container(&container_id(), WaitCondition::NextExit).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), waiting.exit()).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    faulty.inject("/wait?", Fault::Truncate { after: 3 });
    let waiting = docker.wait_container(&container_id(), WaitCondition::NextExit).await.unwrap();
    let err = waiting.exit().await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "a cut JSON body is not an exit code: {err:?}");
    replay.finish().unwrap();
}

#[tokio::test]
async fn a_request_the_recording_does_not_hold_fails_with_both_sides_shown() {
    let (docker, _, replay) = client(LOGS, 1);
    let err = docker.inspect_container("berth-not-recorded").await.unwrap_err();
    let Error::Transport(e) = err else { panic!("expected a transport error, got {err:?}") };
    let message = e.to_string();
    assert!(
        message.contains("came:     GET /v") && message.contains("/containers/berth-not-recorded/json"),
        "{message}"
    );
    assert!(message.contains("recorded: GET /v") && message.contains("/logs?"), "{message}");
    let finish = replay.finish().unwrap_err().0;
    assert!(finish.contains("berth-not-recorded") && finish.contains("never requested"), "{finish}");
}

#[tokio::test]
async fn a_request_body_that_differs_past_what_is_shown_is_named_by_the_path_of_the_difference() {
    const CREATE: &str = "/containers/create?";
    let cassette = exchanges_of("container_lifecycle", &[(CREATE, 1)]);
    let recorded = &cassette.exchanges[0].request;
    let body = recorded.body.as_ref().expect("a create has a body").to_bytes().unwrap();
    let mut config: engine_api::models::ContainerConfig = serde_json::from_slice(&body).unwrap();
    // A label whose value is long enough that the two bodies' shown prefixes are the same.
    let padding = "x".repeat(500);
    config.labels.get_or_insert_default().insert("io.berth.test".into(), format!("{padding}-changed"));
    let name = recorded.target.split("name=").nth(1).unwrap().to_owned();
    let replay = ReplayTransport::new(cassette, "excerpt").unwrap();
    let docker = Docker::new(replay.clone()).with_version(recorded_version());
    let err = docker.create_container(Some(&name), &config).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("what differs:"), "{message}");
    assert!(message.contains(r#"body.Labels.io.berth.test: came "xxxx"#), "{message}");
    assert!(message.contains(r#" …, recorded "fixtures""#), "{message}");
    assert!(replay.finish().is_err(), "the create that was recorded was never requested");
}

/// A client over `times` copies of the attach scenario's upgraded exchange.
fn attach_client(times: usize) -> (Docker, FaultyTransport, ReplayTransport, String) {
    const ATTACH: &str = "/attach?";
    let cassette = exchanges_of("attach", &[(ATTACH, times)]);
    let target = &cassette.exchanges[0].request.target;
    let id = target.split("/containers/").nth(1).unwrap().split('/').next().unwrap().to_owned();
    let replay = ReplayTransport::new(cassette, "excerpt").unwrap();
    let faulty = FaultyTransport::new(replay.clone());
    (Docker::new(faulty.clone()).with_version(recorded_version()), faulty, replay, id)
}

/// Attaches, writes what the recording wrote, ends stdin and reads to the end.
async fn attach_round(docker: &Docker, id: &str) -> Result<(Vec<Output>, Option<Error>), Error> {
    use tokio::io::AsyncWriteExt;
    let run = async {
        let attached = docker.attach_container(id, false).await?;
        let mut stdin = attached.stdin;
        // Faults break what is read; writes go through.
        stdin.write_all(b"hello through attach\n").await.unwrap();
        stdin.shutdown().await.unwrap();
        let mut output = attached.output;
        let mut got = Vec::new();
        while let Some(item) = output.next().await {
            match item {
                Ok(o) => got.push(o),
                Err(e) => return Ok((got, Some(e))),
            }
        }
        Ok((got, None))
    };
    tokio::time::timeout(Duration::from_secs(5), run).await.expect("nothing hangs")
}

async fn attach_is_whole(docker: &Docker, id: &str, replay: &ReplayTransport) {
    let (outputs, err) = attach_round(docker, id).await.unwrap();
    assert!(err.is_none(), "{err:?}");
    let of = |kind| -> Vec<u8> { outputs.iter().filter(|o| o.stream == kind).flat_map(|o| o.data.to_vec()).collect() };
    assert_eq!(of(StreamKind::Stdout), b"hello through attach\n");
    assert_eq!(of(StreamKind::Stderr), b"read-all\n");
    replay.finish().unwrap();
}

#[tokio::test]
async fn an_attached_stream_cut_mid_frame_is_a_transport_error_and_the_next_attach_is_whole() {
    let (docker, faulty, replay, id) = attach_client(2);
    faulty.inject("/attach", Fault::Cut { after: 12 });
    let (outputs, err) = attach_round(&docker, &id).await.unwrap();
    assert!(outputs.iter().map(|o| o.data.len()).sum::<usize>() <= 4, "{outputs:?}");
    assert!(matches!(err, Some(Error::Transport(_))), "{err:?}");
    attach_is_whole(&docker, &id, &replay).await;
}

#[tokio::test]
async fn garbage_on_an_attached_stream_is_a_decode_error_not_output() {
    let (docker, faulty, replay, id) = attach_client(2);
    faulty.inject("/attach", Fault::Garbage { at: 0, bytes: Bytes::from_static(b"\x09\x00\x00\x00garbage!") });
    let (outputs, err) = attach_round(&docker, &id).await.unwrap();
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(matches!(err, Some(Error::Decode { .. })), "{err:?}");
    attach_is_whole(&docker, &id, &replay).await;
}

#[tokio::test]
async fn an_attached_stream_that_ends_inside_a_frame_is_a_truncation_error() {
    let (docker, faulty, replay, id) = attach_client(2);
    faulty.inject("/attach", Fault::Truncate { after: 8 + 5 });
    let (outputs, err) = attach_round(&docker, &id).await.unwrap();
    assert_eq!(outputs.iter().map(|o| o.data.len()).sum::<usize>(), 5, "what came is handed out");
    assert!(matches!(err, Some(Error::Decode { .. })), "{err:?}");
    attach_is_whole(&docker, &id, &replay).await;
}

#[tokio::test]
async fn an_attach_dropped_before_its_answer_is_a_transport_error() {
    let (docker, faulty, replay, id) = attach_client(1);
    faulty.inject("/attach", Fault::Drop);
    let err = attach_round(&docker, &id).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    attach_is_whole(&docker, &id, &replay).await;
}

#[tokio::test]
async fn a_client_with_a_smaller_frame_bound_refuses_a_larger_frame_before_reading_it() {
    let (docker, _, replay) = client(LOGS, 2);
    let strict = docker.clone().with_max_frame(3);
    let (outputs, err) = read_logs(&strict).await;
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(
        matches!(
            err,
            Some(Error::Decode {
                source: engine_api::DecodeError::Output(engine_api::decode::mux::MuxError::FrameTooLarge { .. }),
                ..
            })
        ),
        "{err:?}"
    );
    next_call_is_whole(&docker, &replay).await;
}
