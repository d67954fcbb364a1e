//! What berth's HTTP front ends served, for the metrics: requests by API,
//! route template, method and status, with their latency. Every label is
//! bounded: the route is the template a request matched (`/v1/runs/{id}`,
//! never the path it asked for; `unmatched` when it matched none), the
//! method one of HTTP's own (`other` for the rest).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The bounds of the latency histogram, in seconds: 0.5 ms to 5 min (a
/// run waited on answers when it ends).
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    api: &'static str,
    route: String,
    method: &'static str,
}

/// The requests served, in a registry of their own (prefix `berth_http`).
#[derive(Debug)]
pub struct Traffic {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for Traffic {
    fn default() -> Traffic {
        let mut registry = Registry::with_prefix("berth_http");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered, by route, method and status", requests.clone());
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(histogram);
        registry.register_with_unit(
            "request",
            "How long a request took until its answer's head",
            Unit::Seconds,
            latency.clone(),
        );
        Traffic { registry, requests, latency }
    }
}

impl Traffic {
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn note(&self, api: &'static str, route: String, method: &'static str, status: u16, took: f64) {
        self.latency.get_or_create(&RouteLabels { api, route: route.clone(), method }).observe(took);
        self.requests.get_or_create(&RequestLabels { api, route, method, status }).inc();
    }
}

/// A method as a label: HTTP's own, or `other`.
fn method_word(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN.iter().find(|(m, _)| m == method).map_or("other", |(_, w)| w)
}

/// Counts and times every request of `api` through `traffic`.
pub async fn count(traffic: Arc<Traffic>, api: &'static str, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = method_word(request.method());
    let response = next.run(request).await;
    traffic.note(api, route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_outside_https_own_is_counted_as_other() {
        assert_eq!(method_word(&Method::DELETE), "DELETE");
        assert_eq!(method_word(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
