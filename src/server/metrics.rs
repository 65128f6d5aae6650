//! Prometheus metrics, one registry per server (no globals).

use std::fmt::Write as _;

use axum::http::Method;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of refusals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The OAuth error code or refusal reason.
    pub reason: String,
}

/// Labels of request latencies. Every value comes from a closed set, so a
/// stranger cannot add series: the method is one of the standard ones or
/// `other`, the route is a route template of the router or `unmatched`, the
/// status is one the server answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// HTTP method.
    pub method: MethodLabel,
    /// The route template (`/v1/agents/{id}`), never the raw path;
    /// `unmatched` for a path no route matches.
    pub route: String,
    /// Response status.
    pub status: u16,
}

/// The method of a request, from a closed set.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum MethodLabel {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// Any other method (a request line may name any token): `other`.
    Other,
}

impl MethodLabel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other => "other",
        }
    }
}

impl From<&Method> for MethodLabel {
    fn from(m: &Method) -> Self {
        match *m {
            Method::GET => Self::Get,
            Method::HEAD => Self::Head,
            Method::POST => Self::Post,
            Method::PUT => Self::Put,
            Method::PATCH => Self::Patch,
            Method::DELETE => Self::Delete,
            Method::OPTIONS => Self::Options,
            _ => Self::Other,
        }
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

type HistogramFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The issuer's metrics.
pub struct Metrics {
    registry: Registry,
    /// Tokens minted.
    pub minted: Counter,
    /// Token requests refused, by reason.
    pub refused: Family<ReasonLabel, Counter>,
    /// Revocations recorded.
    pub revocations: Counter,
    /// Request latency by route.
    pub latency: HistogramFamily,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let minted = Counter::default();
        let refused = Family::<ReasonLabel, Counter>::default();
        let revocations = Counter::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register("tokens_minted", "Tokens minted", minted.clone());
        registry.register(
            "tokens_refused",
            "Token requests refused, by reason",
            refused.clone(),
        );
        registry.register("revocations", "Revocations recorded", revocations.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        Self {
            registry,
            minted,
            refused,
            revocations,
            latency,
        }
    }
}

impl Metrics {
    /// Counts a refusal.
    pub fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
