//! Prometheus metrics, one registry per server (no globals).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
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

/// Labels of request latencies.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// HTTP method.
    pub method: String,
    /// The route pattern (not the raw path).
    pub route: String,
    /// Response status.
    pub status: u16,
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
