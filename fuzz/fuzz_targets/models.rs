//! The wire models on arbitrary JSON (or not-JSON): every type the client
//! deserializes from a daemon's answer is tried on the whole input, and the
//! streamed ones (stats, events, pull progress) also as `JsonStream` reads
//! them, value after value. Nothing may panic.
//!
//! On every `Stats` that parses, the computed values are taken too: no panic
//! and no arithmetic overflow (the fuzz build has overflow checks on), a
//! finite, non-negative CPU percent, used memory within usage. The types that
//! are also serialized must serialize and read back to the same JSON.
//!
//! Input layout: the whole input is the body.

#![no_main]

use engine_api::models::*;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One whole answer, as `Docker::read_json` parses it.
fn parse<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

/// Back-to-back values, as `JsonStream::parse_line` reads a line: up to the first error.
fn stream<T: DeserializeOwned>(data: &[u8]) -> Vec<T> {
    serde_json::Deserializer::from_slice(data).into_iter::<T>().map_while(Result::ok).collect()
}

/// A value the client also sends or re-emits must survive a round trip.
fn round_trip<T: Serialize + DeserializeOwned>(value: &T) {
    let json = serde_json::to_vec(value).expect("a parsed model fails to serialize");
    let again: T = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("a serialized model does not parse back: {e}: {}", String::from_utf8_lossy(&json)));
    assert_eq!(
        serde_json::to_value(value).unwrap(),
        serde_json::to_value(&again).unwrap(),
        "a model changes through a round trip"
    );
}

fn check_stats(s: &Stats, previous: Option<&Stats>) {
    for prev in [None, Some(&s.cpu_stats), Some(&s.precpu_stats), previous.map(|p| &p.cpu_stats)] {
        if let Some(p) = s.cpu_percent(prev) {
            assert!(p.is_finite() && p >= 0.0, "cpu_percent = {p}");
        }
    }
    if let Some(used) = s.memory_used() {
        assert!(used <= s.memory_stats.usage.unwrap_or(0), "memory_used above usage");
    }
    if let Some(limit) = s.memory_limit() {
        assert!(limit > 0);
    }
    let _ = s.network_io();
    let _ = s.block_io();
    round_trip(s);
}

fuzz_target!(|data: &[u8]| {
    // Containers.
    if let Some(c) = parse::<ContainerInspect>(data) {
        let _ = (c.tty(), c.labels(), c.state.status.to_string());
    }
    let _ = parse::<Vec<ContainerSummary>>(data);
    let _ = parse::<ContainerCreated>(data);
    let _ = parse::<WaitExit>(data);
    let _ = parse::<ContainersPruned>(data);
    let _ = parse::<PathStat>(data);
    if let Some(c) = parse::<ContainerConfig>(data) {
        round_trip(&c);
    }

    // Stats: one-shot, and streamed with each sample against the one before.
    if let Some(s) = parse::<Stats>(data) {
        check_stats(&s, None);
    }
    let samples = stream::<Stats>(data);
    for (i, s) in samples.iter().enumerate() {
        check_stats(s, i.checked_sub(1).map(|j| &samples[j]));
    }

    // Exec.
    let _ = parse::<ExecCreated>(data);
    let _ = parse::<ExecInspect>(data);

    // Images.
    let _ = parse::<ImageInspect>(data);
    let _ = parse::<Vec<ImageSummary>>(data);
    let _ = parse::<Vec<ImageDeleted>>(data);
    for p in parse::<ImageProgress>(data).into_iter().chain(stream::<ImageProgress>(data)) {
        let _ = p.failure();
        round_trip(&p);
    }

    // Networks and volumes.
    let _ = parse::<NetworkCreated>(data);
    let _ = parse::<Network>(data);
    let _ = parse::<Vec<Network>>(data);
    let _ = parse::<NetworksPruned>(data);
    let _ = parse::<Volume>(data);
    let _ = parse::<VolumeList>(data);

    // System.
    if let Some(v) = parse::<SystemVersion>(data) {
        round_trip(&v);
    }
    if let Some(i) = parse::<SystemInfo>(data) {
        round_trip(&i);
    }
    for e in parse::<Event>(data).into_iter().chain(stream::<Event>(data)) {
        round_trip(&e);
    }
});
