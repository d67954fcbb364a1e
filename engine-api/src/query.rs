//! Query strings and the Engine API's JSON-encoded `filters` parameter.

use std::collections::BTreeMap;

/// A query string under construction; parameters keep their insertion order,
/// so the same call always produces the same target (which replay relies on).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.pairs.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn opt(&mut self, key: &str, value: Option<impl ToString>) -> &mut Self {
        if let Some(v) = value {
            self.push(key, v);
        }
        self
    }

    /// Adds a boolean only when it is true (the daemon's default is false).
    pub fn flag(&mut self, key: &str, value: bool) -> &mut Self {
        if value {
            self.push(key, "true");
        }
        self
    }

    pub fn filters(&mut self, filters: &Filters) -> &mut Self {
        if !filters.is_empty() {
            self.push("filters", filters.to_json());
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `?a=1&b=2`, or the empty string.
    pub fn encode(&self) -> String {
        if self.pairs.is_empty() {
            return String::new();
        }
        let mut ser = form_urlencoded::Serializer::for_suffix(String::from("?"), 1);
        for (k, v) in &self.pairs {
            ser.append_pair(k, v);
        }
        ser.finish()
    }
}

/// The `filters` map (`{"label":["a=b"],"status":["running"]}`), sorted by key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters {
    map: BTreeMap<String, Vec<String>>,
}

impl Filters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value for a filter key; values of one key are ORed, keys ANDed.
    pub fn add(mut self, key: &str, value: impl Into<String>) -> Self {
        self.map.entry(key.to_owned()).or_default().push(value.into());
        self
    }

    /// A `label` filter: `key` alone matches any value, `key=value` one value.
    pub fn label(self, label: impl Into<String>) -> Self {
        self.add("label", label)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.map).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_encoded_as_json_inside_the_query() {
        let mut q = Query::new();
        q.flag("all", true)
            .flag("size", false)
            .filters(&Filters::new().label("io.berth.managed").add("status", "exited"));
        assert_eq!(
            q.encode(),
            "?all=true&filters=%7B%22label%22%3A%5B%22io.berth.managed%22%5D%2C%22status%22%3A%5B%22exited%22%5D%7D"
        );
        assert_eq!(Query::new().encode(), "");
    }
}

/// Percent-encodes one path segment (a container id or name, a network, a
/// volume) so that no value can reach another route with `/`, `?` or `..`.
pub fn segment(value: &str) -> String {
    escape(value, |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@'), true)
}

/// Percent-encodes an image reference for `/images/{name}`: the daemon's
/// route takes the rest of the path, so `/` stays (`registry:5000/org/img:tag`).
pub fn image_ref(value: &str) -> String {
    escape(value, |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@' | b'/'), false)
}

fn escape(value: &str, keep: impl Fn(u8) -> bool, escape_dots: bool) -> String {
    if escape_dots && (value == "." || value == "..") {
        return value.replace('.', "%2E");
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod segment_tests {
    use super::*;

    #[test]
    fn a_segment_cannot_escape_its_route() {
        assert_eq!(segment("abc123"), "abc123");
        assert_eq!(segment("../../images/x?force=1"), "..%2F..%2Fimages%2Fx%3Fforce%3D1");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(image_ref("127.0.0.1:5000/berth/busybox:1.35"), "127.0.0.1:5000/berth/busybox:1.35");
        assert_eq!(image_ref("a b?c"), "a%20b%3Fc");
    }
}
