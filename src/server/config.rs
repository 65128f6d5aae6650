//! Configuration: defaults, then a TOML file, then `TESSERA_*` environment
//! variables, then command-line flags. Parsed once in `main` and passed down.
//! Unknown keys, in the file or the environment, are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{AuditRetention, RedisConfig, StoreError, Stores};

/// Environment variables that start with `TESSERA_` but are not settings.
/// (Test switches, the log filter, and the command-line client's defaults.)
const NOT_SETTINGS: &[&str] = &[
    "TESSERA_LOG",
    "TESSERA_REQUIRE_REDIS",
    "TESSERA_REQUIRE_PYTHON",
    "TESSERA_REQUIRE_NODE",
    "TESSERA_PYTHON",
    "TESSERA_REGENERATE_FIXTURES",
    "TESSERA_ISSUER",
    "TESSERA_ADMIN_TOKEN",
    "TESSERA_AGENT",
    "TESSERA_AGENT_KEY",
    "TESSERA_REQUIRE_BROWSER",
    "TESSERA_CHROMIUM",
    "TESSERA_SCREENSHOTS",
];

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A value or key is invalid (the message names it).
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// What minting does while the store is unreachable. Revocations are never
/// acknowledged without the store, whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreOutage {
    /// Answer 503: nothing is minted without the store (the default).
    #[default]
    Refuse,
    /// Keep minting for agents this process authenticated in the last five
    /// minutes, with an in-process replay cache; the ledger and audit
    /// entries of those tokens go to the log only.
    Local,
}

/// A duration written like `30s`, `5m`, `1h` (or a number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ttl(#[serde(with = "crate::token::duration_text")] pub Duration);

/// Every setting of `tessera serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The public issuer URL (`iss` of the metadata, accepted `aud` of client
    /// assertions). Defaults to `http://<listen>`.
    pub issuer_url: Option<String>,
    /// Where the embedded store and the root keys live.
    pub data_dir: PathBuf,
    /// Directory of the root key ring (default: `<data_dir>/keys`).
    pub keys_dir: Option<PathBuf>,
    /// The audit log's signing key, a hex Ed25519 seed created 0600 on
    /// first start (default: `<keys_dir>/audit-ed25519.key`); not a root key.
    pub audit_key_file: Option<PathBuf>,
    /// The origin line of audit checkpoints and the audit key's name
    /// (default: the issuer URL's host and port, then `/audit`).
    pub audit_origin: Option<String>,
    /// Use Redis for agents, revocations, replay caches and the audit log:
    /// `redis://host:port[/db]` for one server, or
    /// `redis+cluster://host:port,host:port` for a Redis Cluster (any
    /// reachable nodes). Keys and durability: docs/storage.md.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key; must not contain `{` or `}` (hash tags).
    pub redis_key_prefix: String,
    /// Lifetime of a token when the request names none.
    pub default_ttl: Ttl,
    /// Longest lifetime any token may get (an agent's ceiling may be lower).
    pub max_ttl: Ttl,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest token accepted, in bytes.
    pub max_token_bytes: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Accepted clock skew for client assertions and DPoP proofs, seconds.
    pub clock_skew_secs: i64,
    /// Accepted age of a DPoP proof, seconds.
    pub dpop_window_secs: i64,
    /// Minting while the store is unreachable.
    pub store_outage: StoreOutage,
    // -- Connections (see `tessera::net::ServeLimits`) and metrics.
    /// Time to receive a request head, from accept or from the previous
    /// answer on a kept-alive connection.
    pub header_read_timeout: Ttl,
    /// Time to receive a request body, from the end of its head.
    pub body_read_timeout: Ttl,
    /// A connection with no bytes moving and no request being handled for
    /// this long is closed.
    pub idle_timeout: Ttl,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Serve `/metrics` on this address, a listener of its own (none: no
    /// metrics endpoint). The main listener never serves `/metrics`.
    pub metrics_listen: Option<SocketAddr>,
    // Audit log bounds (issue 9, finding 5).
    /// Most audit events kept: the embedded store drops the oldest beyond
    /// it; on Redis, the stream's approximate `MAXLEN`.
    pub audit_max_events: usize,
    /// Audit events older than this are dropped by the embedded store (on
    /// each write). None (the default): only `audit_max_events` bounds it.
    pub audit_max_age: Option<Ttl>,
    /// Refusals before client authentication stored one by one per
    /// `audit_unauthenticated_interval`; the others are counted by reason in
    /// one summary event per interval.
    pub audit_unauthenticated_sample: u32,
    /// See `audit_unauthenticated_sample`.
    pub audit_unauthenticated_interval: Ttl,
    // -- People (DESIGN.md, "People"; docs/people.md).
    /// Trusted identity providers (`[[idp]]`): only in the file.
    pub idp: Vec<crate::people::IdpConfig>,
    /// Roles people may hold (`[[role]]`): only in the file.
    pub role: Vec<crate::people::Role>,
    // -- Web pages (src/web; docs/web.md).
    /// Cookies of the web pages (`[web]`).
    pub web: crate::web::WebConfig,
    /// Login of people through one trusted IdP (`[login]`); none: no login
    /// pages.
    pub login: Option<crate::web::LoginConfig>,
    /// Who may open the operator console (`[console]`).
    pub console: crate::web::console::ConsoleConfig,
    // -- Clients (issue 12): Client ID Metadata Documents.
    /// How Client ID Metadata Documents are fetched (`[clients]`).
    pub clients: super::cimd::ClientsConfig,
    /// Which actions need a person's approval (`[approval]`): only in the file.
    pub approval: super::approval_policy::ApprovalConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer_url: None,
            data_dir: PathBuf::from("tessera-data"),
            keys_dir: None,
            audit_key_file: None,
            audit_origin: None,
            redis_url: None,
            redis_key_prefix: "tessera:".into(),
            default_ttl: Ttl(Duration::from_secs(300)),
            max_ttl: Ttl(Duration::from_secs(3600)),
            max_body_bytes: 64 * 1024,
            max_token_bytes: 16 * 1024,
            log_format: LogFormat::Human,
            clock_skew_secs: 30,
            dpop_window_secs: 60,
            store_outage: StoreOutage::Refuse,
            header_read_timeout: Ttl(Duration::from_secs(10)),
            body_read_timeout: Ttl(Duration::from_secs(30)),
            idle_timeout: Ttl(Duration::from_secs(60)),
            max_connections: 1024,
            metrics_listen: None,
            audit_max_events: 1_000_000,
            audit_max_age: None,
            audit_unauthenticated_sample: 20,
            audit_unauthenticated_interval: Ttl(Duration::from_secs(60)),
            idp: Vec::new(),
            role: Vec::new(),
            web: crate::web::WebConfig::default(),
            login: None,
            console: Default::default(),
            clients: super::cimd::ClientsConfig::default(),
            approval: Default::default(),
        }
    }
}

/// Overrides from command-line flags (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--issuer-url`.
    pub issuer_url: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--redis-url`.
    pub redis_url: Option<String>,
}

impl Config {
    /// Loads defaults, then `file`, then the `TESSERA_*` variables in `env`,
    /// then `overrides`, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>().map_err(|e| {
                    ConfigError::Invalid(format!("{}: {}", path.display(), e.message()))
                })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("TESSERA_") else {
                continue;
            };
            if NOT_SETTINGS.contains(&name.as_str()) {
                continue;
            }
            let value = match value.parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(value),
            };
            table.insert(key.to_ascii_lowercase(), value);
        }
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        if let Some(v) = overrides.listen {
            config.listen = v;
        }
        if let Some(v) = overrides.issuer_url {
            config.issuer_url = Some(v);
        }
        if let Some(v) = overrides.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = overrides.redis_url {
            config.redis_url = Some(v);
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Some(url) = &self.issuer_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                return bad(format!(
                    "issuer_url `{url}` must be an http(s) URL without a trailing slash"
                ));
            }
        }
        let max = crate::token::Lifetime::MAX;
        if self.max_ttl.0 > max || self.max_ttl.0.is_zero() {
            return bad(format!("max_ttl must be between 1s and {}s", max.as_secs()));
        }
        if self.default_ttl.0 > self.max_ttl.0 || self.default_ttl.0.is_zero() {
            return bad("default_ttl must be between 1s and max_ttl".into());
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes must be at least 1024".into());
        }
        if !(1024..=1024 * 1024).contains(&self.max_token_bytes) {
            return bad("max_token_bytes must be between 1 KiB and 1 MiB".into());
        }
        self.clients.check().map_err(ConfigError::Invalid)?;
        if !(0..=300).contains(&self.clock_skew_secs) || !(1..=600).contains(&self.dpop_window_secs)
        {
            return bad("clock_skew_secs must be 0..=300 and dpop_window_secs 1..=600".into());
        }
        let hour = Duration::from_secs(3600);
        for (name, t) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if t.0.is_zero() || t.0 > hour {
                return bad(format!("{name} must be between 1s and 1h"));
            }
        }
        if let Err(e) = self.serve_limits().check() {
            return bad(e.to_string());
        }
        if self.metrics_listen == Some(self.listen) {
            return bad("metrics_listen must differ from listen".into());
        }
        if self.audit_max_events < 1000 {
            return bad("audit_max_events must be at least 1000".into());
        }
        if self
            .audit_max_age
            .is_some_and(|t| t.0 < Duration::from_secs(3600))
        {
            return bad("audit_max_age must be at least 1h".into());
        }
        if self.audit_unauthenticated_sample > 10_000 {
            return bad("audit_unauthenticated_sample must be at most 10000".into());
        }
        let interval = self.audit_unauthenticated_interval.0;
        if interval < Duration::from_secs(1) || interval > Duration::from_secs(86_400) {
            return bad("audit_unauthenticated_interval must be between 1s and 24h".into());
        }
        let mut issuers = std::collections::HashSet::new();
        for idp in &self.idp {
            idp.check()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if !issuers.insert(idp.issuer.as_str()) {
                return bad(format!(
                    "identity provider `{}` is listed twice",
                    idp.issuer
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for role in &self.role {
            role.check()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if !names.insert(role.name.as_str()) {
                return bad(format!("role `{}` is defined twice", role.name));
            }
        }
        self.web
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(login) = &self.login {
            login
                .check(&self.idp)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        self.approval.check().map_err(ConfigError::Invalid)?;
        self.console
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// The connection limits of both listeners.
    pub fn serve_limits(&self) -> crate::net::ServeLimits {
        crate::net::ServeLimits {
            header_read_timeout: self.header_read_timeout.0,
            body_read_timeout: self.body_read_timeout.0,
            idle_timeout: self.idle_timeout.0,
            max_connections: self.max_connections,
        }
    }

    /// How much of the audit log the embedded store keeps.
    pub fn audit_retention(&self) -> AuditRetention {
        AuditRetention {
            max_events: u64::try_from(self.audit_max_events).unwrap_or(u64::MAX),
            max_age: self.audit_max_age.map(|t| t.0),
        }
    }

    /// Opens the stores these settings name: Redis when `redis_url` is set
    /// ([`redis_config`](Self::redis_config)), otherwise the embedded store
    /// under `data_dir` with [`audit_retention`](Self::audit_retention).
    pub async fn open_stores(&self) -> Result<Stores, StoreError> {
        match self.redis_config() {
            Some(redis) => Stores::redis_with(redis).await,
            None => Stores::embedded_with(&self.data_dir, self.audit_retention()),
        }
    }

    /// The Redis store's settings, when `redis_url` is set.
    pub fn redis_config(&self) -> Option<RedisConfig> {
        self.redis_url.as_ref().map(|url| RedisConfig {
            key_prefix: self.redis_key_prefix.clone(),
            audit_max_len: self.audit_max_events,
            ..RedisConfig::new(url.as_str())
        })
    }

    /// The issuer URL, defaulting to `http://<listen>`.
    pub fn issuer(&self) -> String {
        self.issuer_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The root key ring directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.keys_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nmax_ttl = \"30m\"\ndefault_ttl = 60\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("TESSERA_MAX_BODY_BYTES", "2048"),
                ("TESSERA_REQUIRE_REDIS", "1"),
                ("TESSERA_REQUIRE_NODE", "1"),
                ("HOME", "/x"),
            ]),
            Overrides {
                data_dir: Some("/tmp/d".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.max_ttl, Ttl(Duration::from_secs(1800)));
        assert_eq!(c.default_ttl, Ttl(Duration::from_secs(60)));
        assert_eq!(c.max_body_bytes, 2048);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(c.issuer(), "http://127.0.0.1:9000");
    }

    #[test]
    fn connection_limits_and_the_metrics_listener_come_from_file_and_environment() {
        let d = Config::default();
        assert_eq!(d.serve_limits(), crate::net::ServeLimits::default());
        assert_eq!(d.metrics_listen, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "header_read_timeout = \"5s\"\nidle_timeout = 20\nmetrics_listen = \"127.0.0.1:9464\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("TESSERA_BODY_READ_TIMEOUT", "1m"),
                ("TESSERA_MAX_CONNECTIONS", "100"),
            ]),
            Overrides::default(),
        )
        .unwrap();
        let l = c.serve_limits();
        assert_eq!(l.header_read_timeout, Duration::from_secs(5));
        assert_eq!(l.body_read_timeout, Duration::from_secs(60));
        assert_eq!(l.idle_timeout, Duration::from_secs(20));
        assert_eq!(l.max_connections, 100);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn unknown_keys_are_errors_in_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let e = Config::load(Some(&path), env(&[]), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::load(
            None,
            env(&[("TESSERA_REDIS_ULR", "x")]),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("redis_ulr"), "{e}");
    }

    #[test]
    fn audit_bounds_are_read_and_reach_both_stores() {
        let c = Config::load(
            None,
            env(&[
                ("TESSERA_AUDIT_MAX_EVENTS", "5000"),
                ("TESSERA_AUDIT_MAX_AGE", "30d"),
                ("TESSERA_AUDIT_UNAUTHENTICATED_SAMPLE", "5"),
                ("TESSERA_AUDIT_UNAUTHENTICATED_INTERVAL", "10s"),
                ("TESSERA_REDIS_URL", "redis://127.0.0.1:1/"),
            ]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.audit_retention(),
            AuditRetention {
                max_events: 5000,
                max_age: Some(Duration::from_secs(30 * 86_400)),
            }
        );
        assert_eq!(c.redis_config().unwrap().audit_max_len, 5000);
        assert_eq!(c.audit_unauthenticated_sample, 5);
        assert_eq!(
            c.audit_unauthenticated_interval,
            Ttl(Duration::from_secs(10))
        );
        let d = Config::default();
        assert_eq!(d.audit_retention(), AuditRetention::default());
        assert!(d.redis_config().is_none());
    }

    #[test]
    fn invalid_values_are_refused() {
        for (k, v) in [
            ("TESSERA_AUDIT_MAX_EVENTS", "10"),
            ("TESSERA_AUDIT_MAX_AGE", "1m"),
            ("TESSERA_AUDIT_UNAUTHENTICATED_INTERVAL", "0s"),
            ("TESSERA_AUDIT_UNAUTHENTICATED_SAMPLE", "-1"),
            ("TESSERA_MAX_TTL", "2d"),
            ("TESSERA_DEFAULT_TTL", "0s"),
            ("TESSERA_ISSUER_URL", "issuer.example"),
            ("TESSERA_LOG_FORMAT", "xml"),
            ("TESSERA_LISTEN", "nowhere"),
            ("TESSERA_HEADER_READ_TIMEOUT", "0s"),
            ("TESSERA_BODY_READ_TIMEOUT", "2h"),
            ("TESSERA_IDLE_TIMEOUT", "0"),
            ("TESSERA_MAX_CONNECTIONS", "0"),
            ("TESSERA_MAX_CONNECTIONS", "-1"),
            ("TESSERA_METRICS_LISTEN", "127.0.0.1:8080"),
        ] {
            assert!(
                Config::load(None, env(&[(k, v)]), Overrides::default()).is_err(),
                "{k}={v}"
            );
        }
    }
}
