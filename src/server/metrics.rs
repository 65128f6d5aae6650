//! Prometheus metrics, one registry per server (no globals).

use std::fmt::Write as _;

use axum::http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

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
    /// Refusals of the web pages (src/web), by reason from a closed set.
    pub web_refused: Family<ReasonLabel, Counter>,
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
        let web_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "web_refused",
            "Web page requests refused (login, session, CSRF), by reason",
            web_refused.clone(),
        );
        registry.register("build", "Version of this build", build_info());
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            minted,
            refused,
            revocations,
            latency,
            web_refused,
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

/// `tessera_build_info{version, target_os, target_arch, profile} 1`.
fn build_info() -> Info<Vec<(&'static str, &'static str)>> {
    Info::new(vec![
        ("version", env!("CARGO_PKG_VERSION")),
        ("target_os", std::env::consts::OS),
        ("target_arch", std::env::consts::ARCH),
        (
            "profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        ),
    ])
}

/// The process figures Prometheus' own clients export, under the registry's
/// prefix, read from `/proc` on each scrape (Linux; elsewhere nothing is
/// exported): `tessera_process_resident_memory_bytes`,
/// `tessera_process_cpu_seconds_total`, `tessera_process_open_fds`,
/// `tessera_process_start_time_seconds`.
#[derive(Debug)]
struct ProcessCollector;

/// Figures of this process.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcessFigures {
    /// Resident memory, bytes.
    pub resident_bytes: Option<u64>,
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat`: the kernel reports them in
/// `USER_HZ`, which is 100 on every architecture Linux exports to user space.
const USER_HZ: f64 = 100.0;

impl ProcessFigures {
    /// Reads this process's figures from `/proc`; a figure that cannot be
    /// read is `None` (and is not exported).
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let boot = std::fs::read_to_string("/proc/stat").ok();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        Self::parse(stat.as_deref(), boot.as_deref(), status.as_deref(), fds)
    }

    /// The figures from the texts of `/proc/self/stat`, `/proc/stat`,
    /// `/proc/self/status` and the count of `/proc/self/fd`.
    pub fn parse(
        stat: Option<&str>,
        boot: Option<&str>,
        status: Option<&str>,
        open_fds: Option<u64>,
    ) -> Self {
        // Fields after the command name, which is in parentheses and may
        // hold spaces: field 3 (state) is index 0 here.
        let fields: Vec<&str> = stat
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let cpu_seconds = match (field(14), field(15)) {
            (Some(u), Some(s)) => Some((u + s) / USER_HZ),
            _ => None,
        };
        let btime = boot.and_then(|b| {
            b.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let start_time_seconds = match (btime, field(22)) {
            (Some(b), Some(ticks)) => Some(b + ticks / USER_HZ),
            _ => None,
        };
        let resident_bytes = status.and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
        Self {
            resident_bytes,
            cpu_seconds,
            open_fds,
            start_time_seconds,
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = ProcessFigures::read();
        if let Some(v) = p.resident_bytes {
            let e = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?;
            ConstGauge::new(v as i64).encode(e)?;
        }
        if let Some(v) = p.cpu_seconds {
            let e = encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(e)?;
        }
        if let Some(v) = p.open_fds {
            let e = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(v as i64).encode(e)?;
        }
        if let Some(v) = p.start_time_seconds {
            let e = encoder.encode_descriptor(
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            ConstGauge::new(v).encode(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_parsed_from_proc_texts() {
        let stat = "4242 (tessera (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let status = "Name:\ttessera\nVmRSS:\t   2048 kB\nThreads:\t9\n";
        let p = ProcessFigures::parse(Some(stat), Some(boot), Some(status), Some(7));
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.start_time_seconds, Some(1_700_000_123.45));
        assert_eq!(p.resident_bytes, Some(2048 * 1024));
        assert_eq!(p.open_fds, Some(7));
        assert_eq!(
            ProcessFigures::parse(Some("garbage"), None, Some("x"), None),
            ProcessFigures::default()
        );
    }

    #[test]
    fn the_exposition_has_build_info_and_process_figures() {
        let text = Metrics::default().render();
        let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
        let line = text
            .lines()
            .find(|l| l.starts_with("tessera_build_info{"))
            .unwrap_or_else(|| panic!("no build info in {text}"));
        assert!(line.contains(&version) && line.ends_with(" 1"), "{line}");
        if cfg!(target_os = "linux") {
            for name in [
                "tessera_process_resident_memory_bytes ",
                "tessera_process_cpu_seconds_total ",
                "tessera_process_open_fds ",
                "tessera_process_start_time_seconds ",
            ] {
                assert!(
                    text.lines().any(|l| l.starts_with(name)),
                    "{name} missing in {text}"
                );
            }
        }
    }
}
