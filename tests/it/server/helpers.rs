//! `TestApp`: the issuer on a loopback port with typed helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tessera::jose::{self, DpopClaims};
use tessera::server::oauth::JWT_BEARER;
use tessera::server::{self, admin, AppState, Config, KeyRing, SystemClock};
use tessera::store::Stores;
use tessera::token::{self, Inspection, KeySet, Lifetime, Limits};
use tokio::task::JoinHandle;

use crate::store::redis_cluster::RedisCluster;
use crate::store::redis_server::RedisServer;

/// The wall clock (tests are an edge: they may read it).
#[allow(clippy::disallowed_methods)]
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// Percent-encodes a path segment (agent URIs in `/v1/agents/{id}`).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `f` until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP answer: status, headers, body as JSON (`Null` if not JSON) and text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            json,
            text,
        }
    }

    /// The OAuth `error` code.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    pub fn description(&self) -> &str {
        self.json["error_description"].as_str().unwrap_or("")
    }

    pub fn token(&self) -> &str {
        self.json["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {} {}", self.status, self.text))
    }

    /// An RFC 6749 §5.2 error answer with this status and code.
    #[track_caller]
    pub fn assert_oauth_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.error(), code, "{}", self.text);
        let ct = self.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with("application/json"), "{ct}");
        assert_eq!(self.headers["cache-control"], "no-store");
        assert!(self.json.get("access_token").is_none(), "{}", self.text);
        if status == 401 {
            assert!(
                self.headers.contains_key("www-authenticate"),
                "401 without WWW-Authenticate"
            );
        }
    }
}

/// An agent: its URI and private key.
#[derive(Clone)]
pub struct TestAgent {
    pub id: String,
    pub key: SigningKey,
}

impl TestAgent {
    pub fn new(name: &str) -> Self {
        Self {
            id: format!("agent://acme/{name}-{}", random_hex(4)),
            key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        }
    }

    /// `ed25519/<hex>`.
    pub fn public_key(&self) -> String {
        format!(
            "ed25519/{}",
            hex::encode(self.key.verifying_key().as_bytes())
        )
    }
}

/// The default ceiling of [`TestApp::agent`].
pub const ACTION: &str = "docs:read";
pub const AUDIENCE: &str = "https://docs.example";

/// A client assertion with overridable claims and header.
pub struct AssertionBuilder {
    key: SigningKey,
    header: Value,
    claims: Value,
}

impl AssertionBuilder {
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims[name] = value.into();
        self
    }

    pub fn remove_claim(&mut self, name: &str) {
        self.claims.as_object_mut().unwrap().remove(name);
    }

    pub fn alg(mut self, alg: &str) -> Self {
        self.header["alg"] = alg.into();
        self
    }

    pub fn signed_by(mut self, key: &SigningKey) -> Self {
        self.key = key.clone();
        self
    }

    pub fn build(self) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", enc(&self.header), enc(&self.claims));
        let sig = match self.header["alg"].as_str().unwrap() {
            "EdDSA" => {
                // The library's signer for the ordinary case; same bytes.
                if self.header == json!({"alg": "EdDSA"}) {
                    return jose::sign(&self.key, None, false, &self.claims).unwrap();
                }
                self.key.sign(input.as_bytes()).to_bytes().to_vec()
            }
            "none" => Vec::new(),
            // HMAC-SHA256 keyed with the agent's *public* key: the classic
            // algorithm-confusion forgery.
            "HS256" => hmac_sha256(self.key.verifying_key().as_bytes(), input.as_bytes()),
            other => panic!("no signer for {other}"),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A DPoP proof for `htm` `htu` signed by `key`.
pub fn dpop_proof(key: &SigningKey, htm: &str, htu: &str) -> String {
    let claims = DpopClaims {
        jti: random_hex(16),
        htm: htm.into(),
        htu: htu.into(),
        iat: now().timestamp(),
        ath: None,
    };
    jose::sign(key, Some("dpop+jwt"), true, &claims).unwrap()
}

/// Which Redis an issuer test runs on.
#[derive(Clone, Copy, Debug)]
pub enum OnRedis {
    /// One `redis-server`.
    Server,
    /// A three-master Redis Cluster.
    Cluster,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub redis: Option<RedisServer>,
    /// The Redis Cluster of an issuer spawned [`OnRedis::Cluster`].
    pub cluster: Option<RedisCluster>,
    _dir: TempDir,
    server: JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// The issuer on the embedded store in a fresh data directory.
    pub async fn spawn() -> Self {
        Self::spawn_with(None, |_| {}).await
    }

    /// The issuer on a Redis of its own; `None` when redis-server is missing.
    pub async fn spawn_redis() -> Option<Self> {
        Self::spawn_on(OnRedis::Server, |_| {}).await
    }

    /// The issuer on a Redis of its own of the given kind, persistent (what
    /// it acknowledged survives [`restart_redis`](Self::restart_redis));
    /// `None` when redis-server is missing. A second issuer joins it with
    /// [`spawn_with`](Self::spawn_with) and `redis_url` set to
    /// [`redis_url`](Self::redis_url).
    pub async fn spawn_on(on: OnRedis, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        match on {
            OnRedis::Server => {
                let redis = RedisServer::start_with(true)?;
                Some(Self::spawn_with(Some(redis), tweak).await)
            }
            OnRedis::Cluster => {
                let cluster = tokio::task::spawn_blocking(|| RedisCluster::start_with(true))
                    .await
                    .unwrap()?;
                let url = cluster.cluster_url();
                let mut app = Self::spawn_with(None, |c| {
                    c.redis_url = Some(url);
                    tweak(c);
                })
                .await;
                app.cluster = Some(cluster);
                Some(app)
            }
        }
    }

    /// The URL of the Redis (or Redis Cluster) this issuer runs on.
    pub fn redis_url(&self) -> String {
        match (&self.redis, &self.cluster) {
            (Some(redis), _) => redis.url(),
            (None, Some(cluster)) => cluster.cluster_url(),
            (None, None) => panic!("this issuer is not on Redis"),
        }
    }

    /// Kills its Redis: the server, or every node of the cluster.
    pub fn stop_redis(&mut self) {
        match (&mut self.redis, &mut self.cluster) {
            (Some(redis), _) => redis.stop(),
            (None, Some(cluster)) => cluster.stop_all(),
            (None, None) => panic!("this issuer is not on Redis"),
        }
    }

    /// Starts what [`stop_redis`](Self::stop_redis) killed, on the same
    /// ports and data; returns once it answers (a cluster: once it is ok).
    pub fn restart_redis(&mut self) {
        match (&mut self.redis, &mut self.cluster) {
            (Some(redis), _) => redis.restart(),
            (None, Some(cluster)) => cluster.restart_stopped(),
            (None, None) => panic!("this issuer is not on Redis"),
        }
    }

    pub async fn spawn_with(redis: Option<RedisServer>, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut config = Config {
            listen: addr,
            issuer_url: Some(base.clone()),
            data_dir: dir.path().to_owned(),
            redis_url: redis.as_ref().map(RedisServer::url),
            ..Config::default()
        };
        tweak(&mut config);
        // A fresh ring, unless the test shares one between two issuers.
        let (ring, _created) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
        let stores = match &config.redis_url {
            Some(url) => Stores::redis(url, &config.redis_key_prefix).await.unwrap(),
            None => Stores::embedded(&config.data_dir).unwrap(),
        };
        let audit_key = config.keys_dir().join(server::audit_tlog::AUDIT_KEY_FILE);
        let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
        let origin = server::audit_tlog::default_origin(&state.issuer);
        server::audit_tlog::install_key(&state, &audit_key, &origin).unwrap();
        let app = server::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            state,
            redis,
            cluster: None,
            _dir: dir,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn token_endpoint(&self) -> String {
        self.url("/oauth/token")
    }

    /// The issuer's current key set.
    pub fn keys(&self) -> KeySet {
        self.state.ring().key_set(now())
    }

    /// A verified inspection of a token this issuer minted.
    pub fn inspect(&self, token: &str) -> Inspection {
        token::inspect(token, Some(&self.keys()), &Limits::default()).unwrap()
    }

    /// An admin token minted offline from the active root key.
    pub fn admin_token(&self) -> String {
        let cap = admin::admin_capability(Lifetime::parse("1h").unwrap()).unwrap();
        token::mint(&cap, self.state.ring().active(), now())
            .unwrap()
            .token
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        Reply::from(r.send().await.unwrap()).await
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        self.get(path, Some(&self.admin_token())).await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Reply {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(self.admin_token())
            .json(body)
            .send()
            .await
            .unwrap();
        Reply::from(r).await
    }

    /// Registers `agent` with this ceiling; asserts 201.
    pub async fn register_agent(
        &self,
        agent: &TestAgent,
        actions: &[&str],
        resources: &[&str],
        audiences: &[&str],
        max_ttl: Option<&str>,
    ) -> Reply {
        let mut ceiling = json!({
            "actions": actions, "resources": resources, "audiences": audiences,
        });
        if let Some(t) = max_ttl {
            ceiling["max_ttl"] = t.into();
        }
        let r = self
            .admin_post(
                "/v1/agents",
                &json!({
                    "id": agent.id, "public_key": agent.public_key(),
                    "description": "test agent", "ceiling": ceiling,
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r
    }

    /// A registered agent with the default ceiling: `docs:read` on
    /// `docs/team-a/*` at `https://docs.example`, at most 10 minutes.
    pub async fn agent(&self, name: &str) -> TestAgent {
        let a = TestAgent::new(name);
        self.register_agent(&a, &[ACTION], &["docs/team-a/*"], &[AUDIENCE], Some("10m"))
            .await;
        a
    }

    /// A valid client assertion for the token endpoint, to tweak.
    pub fn assertion(&self, agent: &TestAgent) -> AssertionBuilder {
        self.assertion_for(agent, &self.token_endpoint())
    }

    pub fn assertion_for(&self, agent: &TestAgent, aud: &str) -> AssertionBuilder {
        let t = now().timestamp();
        AssertionBuilder {
            key: agent.key.clone(),
            header: json!({ "alg": "EdDSA" }),
            claims: json!({
                "iss": agent.id, "sub": agent.id, "aud": aud,
                "exp": t + 60, "iat": t, "jti": random_hex(16),
            }),
        }
    }

    /// POSTs a form to `/oauth/token`, with an optional DPoP header.
    pub async fn request_token(&self, form: &[(&str, String)], dpop: Option<&str>) -> Reply {
        let mut r = self.http.post(self.token_endpoint()).form(form);
        if let Some(p) = dpop {
            r = r.header("DPoP", p);
        }
        Reply::from(r.send().await.unwrap()).await
    }

    /// The form of a `client_credentials` request with this assertion.
    pub fn form<'a>(assertion: String, extra: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", assertion),
        ];
        form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        form
    }

    /// Asks for `docs:read` on `resource` at the default audience.
    pub async fn mint(&self, agent: &TestAgent, resource: &str) -> Reply {
        let form = Self::form(
            self.assertion(agent).build(),
            &[
                ("scope", ACTION),
                ("identifier", resource),
                ("resource", AUDIENCE),
            ],
        );
        self.request_token(&form, None).await
    }

    /// Like [`mint`](Self::mint), asserting 200; returns the token response.
    pub async fn mint_ok(&self, agent: &TestAgent, resource: &str) -> Value {
        let r = self.mint(agent, resource).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json
    }

    /// `POST /v1/revocations`.
    pub async fn revoke_admin(&self, body: &Value) -> Reply {
        self.admin_post("/v1/revocations", body).await
    }

    /// `GET /v1/revocations?after=`: the revocation ids with their cursors.
    pub async fn feed(&self, after: Option<&str>) -> Vec<(String, String)> {
        let path = match after {
            Some(c) => format!("/v1/revocations?after={c}"),
            None => "/v1/revocations".to_owned(),
        };
        let r = self.admin_get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        entries(&r.json)
    }
}

/// `(cursor, revocation_id)` of each feed entry.
pub fn entries(feed: &Value) -> Vec<(String, String)> {
    feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["cursor"].as_str().unwrap().to_owned(),
                e["revocation"]["revocation_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}
