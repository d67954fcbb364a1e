//! What the client shows while it waits: a bar of an image pull's bytes
//! (the server streams the engine's progress, layer by layer) and a
//! spinner while a run has said nothing yet. Both draw on stderr through
//! indicatif, which hides them when stderr is not a terminal, so a script
//! reads only what it asked for.
//!
//! [`PullTally`] is the sans-IO part: it takes the pull's progress events
//! and says how far the pull is, in bytes and in layers.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// How often a bar or a spinner is redrawn while nothing new comes.
const TICK: Duration = Duration::from_millis(120);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Layer {
    downloaded: u64,
    size: Option<u64>,
    done: bool,
}

/// An image pull's progress, summed over its layers.
#[derive(Debug, Default)]
pub struct PullTally {
    layers: BTreeMap<String, Layer>,
}

impl PullTally {
    /// Takes one `progress` event (`layer`, `status`, `current`, `total`);
    /// lines about the whole image (no layer) change nothing.
    pub fn step(&mut self, event: &Value) {
        let Some(id) = event["layer"].as_str() else { return };
        let status = event["status"].as_str().unwrap_or_default();
        // The image's own lines carry its tag or digest as their id.
        if status.starts_with("Pulling from") || status.starts_with("Digest:") || status.starts_with("Status:") {
            return;
        }
        let layer = self.layers.entry(id.to_owned()).or_default();
        let (current, total) = (event["current"].as_u64(), event["total"].as_u64());
        match status {
            "Downloading" => {
                layer.downloaded = current.unwrap_or(layer.downloaded);
                layer.size = total.or(layer.size);
            }
            "Download complete" | "Verifying Checksum" | "Extracting" => {
                layer.size = layer.size.or(total);
                layer.downloaded = layer.size.unwrap_or(layer.downloaded);
            }
            "Pull complete" | "Already exists" => {
                layer.downloaded = layer.size.unwrap_or(layer.downloaded);
                layer.done = true;
            }
            _ => {}
        }
    }

    /// Bytes downloaded, of the bytes of the layers whose size is known.
    pub fn bytes(&self) -> (u64, u64) {
        let got = self.layers.values().map(|l| l.downloaded).sum();
        let of = self.layers.values().map(|l| l.size.unwrap_or(l.downloaded)).sum();
        (got, of)
    }

    /// Layers done, of the layers the pull has named.
    pub fn layers(&self) -> (usize, usize) {
        (self.layers.values().filter(|l| l.done).count(), self.layers.len())
    }
}

/// A bar of an image pull on stderr (hidden when it is not a terminal),
/// drawn once the pull has bytes to move: an image that is there, or
/// layers that all exist already, draw nothing. Cleared when dropped.
pub struct PullBar {
    image: String,
    bar: Option<ProgressBar>,
    tally: PullTally,
}

impl PullBar {
    pub fn new(image: &str) -> PullBar {
        PullBar { image: image.to_owned(), bar: None, tally: PullTally::default() }
    }

    pub fn step(&mut self, event: &Value) {
        self.tally.step(event);
        let ((got, of), (done, layers)) = (self.tally.bytes(), self.tally.layers());
        if of == 0 {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(of);
            let style =
                ProgressStyle::with_template("{spinner} pulling {prefix}: {bar:30} {bytes}/{total_bytes} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(self.image.clone());
            bar.enable_steady_tick(TICK);
            bar
        });
        bar.set_length(of);
        bar.set_position(got);
        bar.set_message(format!("{done}/{layers} layers"));
    }
}

impl Drop for PullBar {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A spinner on stderr that says what is awaited and for how long,
/// cleared when it is told or dropped (an error's return included).
pub struct Spinner(ProgressBar);

impl Spinner {
    pub fn new(waiting_for: &str) -> Spinner {
        let spinner = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        spinner.set_style(style);
        spinner.set_message(waiting_for.to_owned());
        spinner.enable_steady_tick(TICK);
        Spinner(spinner)
    }

    pub fn clear(&self) {
        if !self.0.is_finished() {
            self.0.finish_and_clear();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(t: &mut PullTally, layer: &str, status: &str, current: Option<u64>, total: Option<u64>) {
        t.step(&json!({"event": "progress", "layer": layer, "status": status, "current": current, "total": total}));
    }

    #[test]
    fn a_pull_is_as_far_as_its_layers_bytes_and_a_finished_layer_counts_whole() {
        let mut t = PullTally::default();
        t.step(&json!({"event": "progress", "layer": "1", "status": "Pulling from berth/x"}));
        step(&mut t, "a", "Pulling fs layer", None, None);
        step(&mut t, "b", "Pulling fs layer", None, None);
        step(&mut t, "a", "Downloading", Some(100), Some(1000));
        step(&mut t, "b", "Downloading", Some(50), Some(500));
        assert_eq!((t.bytes(), t.layers()), ((150, 1500), (0, 2)), "the image's own line is no layer");
        step(&mut t, "a", "Download complete", None, None);
        step(&mut t, "a", "Extracting", Some(3000), Some(4000));
        step(&mut t, "a", "Pull complete", None, None);
        assert_eq!((t.bytes(), t.layers()), ((1050, 1500), (1, 2)), "extraction's bytes are not downloads");
        step(&mut t, "b", "Pull complete", None, None);
        assert_eq!((t.bytes(), t.layers()), ((1500, 1500), (2, 2)));
    }

    #[test]
    fn a_layer_already_there_is_done_without_bytes() {
        let mut t = PullTally::default();
        step(&mut t, "a", "Already exists", None, None);
        t.step(&json!({"event": "progress", "status": "Status: Downloaded newer image"}));
        assert_eq!((t.bytes(), t.layers()), ((0, 0), (1, 1)));
    }
}
