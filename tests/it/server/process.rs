//! The real `tessera serve` binary: crash durability of the embedded store
//! and key rotation with SIGHUP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::server::oauth::JWT_BEARER;
use tessera::token::{self, Action, Audience, KeySet, Limits, Request, Resource};

use super::helpers::{now, random_hex, Reply, TestAgent, ACTION, AUDIENCE};
use crate::store::redis_server::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A `tessera serve` child process, killed on drop.
struct Served {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts the binary on a free port and waits for `/healthz`.
    async fn start(dir: &Path) -> Self {
        Self::start_as(dir, None).await
    }

    /// Like [`start`](Self::start), with `--issuer-url` when given (so that
    /// a client assertion made for one process is valid for the next).
    async fn start_as(dir: &Path, issuer_url: Option<&str>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.join(format!("serve-{port}.log"))).unwrap();
            let child = Command::new(BIN)
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--data-dir",
                ])
                .arg(dir)
                .args(
                    issuer_url
                        .map(|url| ["--issuer-url", url])
                        .into_iter()
                        .flatten(),
                )
                .env_remove("TESSERA_REDIS_URL")
                .env("TESSERA_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut s = Self {
                child,
                base: format!("http://127.0.0.1:{port}"),
                http: http.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if s.child.try_wait().unwrap().is_some() {
                    break; // port taken, or a failure: try another port
                }
                if let Ok(r) = s.http.get(s.url("/healthz")).send().await {
                    if r.status() == StatusCode::OK {
                        return s;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let logs: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                p.extension()
                    .is_some_and(|x| x == "log")
                    .then(|| std::fs::read_to_string(p).unwrap_or_default())
            })
            .collect();
        panic!("tessera serve did not start: {logs:?}");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown code runs.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    async fn post_json(&self, path: &str, admin: &str, body: &Value) -> Reply {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(admin)
            .json(body)
            .send()
            .await
            .unwrap();
        Reply::from(r).await
    }

    async fn get(&self, path: &str, admin: Option<&str>) -> Reply {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = admin {
            r = r.bearer_auth(t);
        }
        Reply::from(r.send().await.unwrap()).await
    }

    async fn register(&self, admin: &str, agent: &TestAgent) {
        let r = self
            .post_json(
                "/v1/agents",
                admin,
                &json!({
                    "id": agent.id, "public_key": agent.public_key(),
                    "ceiling": { "actions": [ACTION], "resources": ["docs/*"], "audiences": [AUDIENCE] },
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    /// A token request for `resource` with a fresh client assertion for
    /// audience `aud` (the token endpoint's URL if `None`).
    fn token_form(
        &self,
        agent: &TestAgent,
        resource: &str,
        aud: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let t = now().timestamp();
        let aud = aud.map_or_else(|| self.url("/oauth/token"), str::to_owned);
        let claims = json!({
            "iss": agent.id, "sub": agent.id, "aud": aud,
            "exp": t + 60, "iat": t, "jti": random_hex(16),
        });
        let assertion = tessera::jose::sign(&agent.key, None, false, &claims).unwrap();
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", assertion),
            ("scope", ACTION.to_owned()),
            ("identifier", resource.to_owned()),
            ("resource", AUDIENCE.to_owned()),
        ]
    }

    async fn request_token(&self, form: &[(&'static str, String)]) -> Reply {
        let r = self.http.post(self.url("/oauth/token")).form(form);
        Reply::from(r.send().await.unwrap()).await
    }

    async fn mint(&self, agent: &TestAgent, resource: &str) -> String {
        let r = self
            .request_token(&self.token_form(agent, resource, None))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.token().to_owned()
    }

    async fn jwks(&self) -> (Value, KeySet) {
        let r = self.get("/.well-known/jwks.json", None).await;
        assert_eq!(r.status, StatusCode::OK);
        (r.json, KeySet::from_jwks_json(&r.text).unwrap())
    }
}

fn cli(args: &[&str], dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_revocation_survives_kill_9_of_the_embedded_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut first = Served::start(&dir).await;
    let admin = cli(&["admin", "token"], &dir);
    let agent = TestAgent::new("durable");
    first.register(&admin, &agent).await;
    let rid = random_hex(64);
    let r = first
        .post_json("/v1/revocations", &admin, &json!({ "revocation_id": rid }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    first.kill_9();

    let second = Served::start(&dir).await;
    let feed = second.get("/v1/revocations", Some(&admin)).await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.text);
    let ids: Vec<&str> = feed.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["revocation"]["revocation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![rid.as_str()]);
    let agents = second.get("/v1/agents", Some(&admin)).await;
    assert_eq!(agents.json[0]["id"], agent.id.as_str(), "{}", agents.text);
    // The agent still gets tokens from the restarted server.
    second.mint(&agent, "docs/after-crash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_mint_survives_kill_9_its_assertion_stays_spent_and_its_token_revocable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let issuer = "https://issuer.test";
    let mut first = Served::start_as(&dir, Some(issuer)).await;
    let admin = cli(&["admin", "token"], &dir);
    let agent = TestAgent::new("minted");
    first.register(&admin, &agent).await;
    for n in 0..20 {
        let form = first.token_form(&agent, &format!("docs/before-{n}"), Some(issuer));
        assert_eq!(first.request_token(&form).await.status, StatusCode::OK);
    }
    // The restarted server listens on another port: the assertion names the
    // issuer URL, which both accept.
    let form = first.token_form(&agent, "docs/crash", Some(issuer));
    let minted = first.request_token(&form).await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text);
    let token_id = minted.json["token_id"].as_str().unwrap().to_owned();
    // Still spent before the crash.
    let again = first.request_token(&form).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.text);
    assert_eq!(again.json["error"], "invalid_client", "{}", again.text);
    first.kill_9();

    let second = Served::start_as(&dir, Some(issuer)).await;
    // The assertion is still spent.
    let replayed = second.request_token(&form).await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        replayed.text
    );
    assert_eq!(
        replayed.json["error"], "invalid_client",
        "{}",
        replayed.text
    );
    assert!(replayed.text.contains("already used"), "{}", replayed.text);
    // A fresh one works.
    let fresh = second.token_form(&agent, "docs/after", Some(issuer));
    assert_eq!(second.request_token(&fresh).await.status, StatusCode::OK);
    // The ledger entry is there: the token can be revoked by its id.
    let r = second
        .post_json("/v1/revocations", &admin, &json!({ "token_id": token_id }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["revoked"].as_array().unwrap().len(), 1, "{}", r.text);
    // And so is its audit event.
    let audit = second
        .get(&format!("/v1/audit?token_id={token_id}"), Some(&admin))
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let kinds: Vec<&str> = audit.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["mint", "revocation"], "{}", audit.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_keys_rotate_and_sighup_new_tokens_use_key_1_and_old_tokens_still_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let served = Served::start(&dir).await;
    let admin = cli(&["admin", "token"], &dir);
    let agent = TestAgent::new("rotating");
    served.register(&admin, &agent).await;
    let old = served.mint(&agent, "docs/old").await;
    let limits = Limits::default();
    let inspect = |t: &str, keys: &KeySet| token::inspect(t, Some(keys), &limits).unwrap();
    let (_, keys) = served.jwks().await;
    assert_eq!(inspect(&old, &keys).root_key_id, Some(0));

    cli(&["keys", "rotate"], &dir);
    served.signal("-HUP");

    let deadline = Instant::now() + Duration::from_secs(10);
    let (jwks, keys) = loop {
        let (jwks, keys) = served.jwks().await;
        if keys.get(1).is_some() {
            break (jwks, keys);
        }
        assert!(Instant::now() < deadline, "JWKS never listed kid 1: {jwks}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    kids.sort_unstable();
    assert_eq!(kids, vec!["0", "1"]);

    let new = served.mint(&agent, "docs/new").await;
    assert_eq!(inspect(&new, &keys).root_key_id, Some(1));

    let req = |resource: &str| Request {
        amount: None,
        operation: Action::parse(ACTION).unwrap(),
        resource: Resource::parse(resource).unwrap(),
        service: Some(Audience::parse(AUDIENCE).unwrap()),
        now: now(),
        proven_key: None,
    };
    token::authorize(&old, &keys, &req("docs/old"), |_| false, &limits).unwrap();
    token::authorize(&new, &keys, &req("docs/new"), |_| false, &limits).unwrap();
    // The admin token minted with key 0 still works too.
    assert_eq!(
        served.get("/v1/agents", Some(&admin)).await.status,
        StatusCode::OK
    );
    // And a fresh admin token comes from key 1.
    let admin1 = cli(&["admin", "token"], &dir);
    assert_eq!(inspect(&admin1, &keys).root_key_id, Some(1));
    assert_eq!(
        served.get("/v1/agents", Some(&admin1)).await.status,
        StatusCode::OK
    );
}
