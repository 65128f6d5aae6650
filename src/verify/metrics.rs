//! Prometheus text exposition (format 0.0.4) of the verifier's counters,
//! written by hand so that a tool server needs no metrics library: append
//! the text to whatever its `/metrics` already serves.

use std::fmt::Write as _;

use super::audit::AuditStats;
use super::view::FollowerStats;

/// The revocation follower's counters:
///
/// - `tessera_verifier_revocations_entries` (gauge): revoked ids held;
/// - `tessera_verifier_revocations_applied_total` (counter): feed entries applied;
/// - `tessera_verifier_revocations_reconnects_total` (counter): reconnections;
/// - `tessera_verifier_revocations_lag_seconds` (gauge): time since the view
///   was last confirmed current, `+Inf` if it never was.
pub fn render_prometheus(stats: &FollowerStats) -> String {
    let lag = match stats.lag {
        Some(lag) => format!("{}", lag.as_secs_f64()),
        None => "+Inf".to_owned(),
    };
    let mut out = String::new();
    metric(
        &mut out,
        "tessera_verifier_revocations_entries",
        "gauge",
        "Revoked ids held in memory.",
        &stats.entries.to_string(),
    );
    metric(
        &mut out,
        "tessera_verifier_revocations_applied_total",
        "counter",
        "Revocation feed entries applied since start.",
        &stats.applied.to_string(),
    );
    metric(
        &mut out,
        "tessera_verifier_revocations_reconnects_total",
        "counter",
        "Times the revocation follower lost its source and reconnected.",
        &stats.reconnects.to_string(),
    );
    metric(
        &mut out,
        "tessera_verifier_revocations_lag_seconds",
        "gauge",
        "Seconds since the revocation view was last confirmed current (+Inf: never).",
        &lag,
    );
    out
}

/// The audit sink's counters: `tessera_verifier_audit_events_accepted_total`,
/// `..._written_total`, `..._dropped_total` and
/// `tessera_verifier_audit_write_failures_total`.
pub fn render_audit_prometheus(stats: &AuditStats) -> String {
    let mut out = String::new();
    metric(
        &mut out,
        "tessera_verifier_audit_events_accepted_total",
        "counter",
        "Decision events queued for the audit log.",
        &stats.accepted.to_string(),
    );
    metric(
        &mut out,
        "tessera_verifier_audit_events_written_total",
        "counter",
        "Decision events written to the audit log.",
        &stats.written.to_string(),
    );
    metric(
        &mut out,
        "tessera_verifier_audit_events_dropped_total",
        "counter",
        "Decision events dropped (queue full, or not flushed at shutdown).",
        &stats.dropped.to_string(),
    );
    metric(
        &mut out,
        "tessera_verifier_audit_write_failures_total",
        "counter",
        "Failed writes of decision events (each retried).",
        &stats.failed_writes.to_string(),
    );
    out
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn follower_stats_render_as_prometheus_text() {
        let stats = FollowerStats {
            entries: 3,
            applied: 5,
            reconnects: 2,
            lag: Some(Duration::from_millis(250)),
            position: None,
        };
        let text = render_prometheus(&stats);
        assert!(text.contains("# TYPE tessera_verifier_revocations_entries gauge\n"));
        assert!(text.contains("\ntessera_verifier_revocations_entries 3\n"));
        assert!(text.contains("\ntessera_verifier_revocations_applied_total 5\n"));
        assert!(text.contains("\ntessera_verifier_revocations_reconnects_total 2\n"));
        assert!(text.contains("\ntessera_verifier_revocations_lag_seconds 0.25\n"));
        let never = render_prometheus(&FollowerStats::default());
        assert!(never.contains("\ntessera_verifier_revocations_lag_seconds +Inf\n"));
        assert!(render_audit_prometheus(&AuditStats::default())
            .contains("\ntessera_verifier_audit_events_dropped_total 0\n"));
    }
}
