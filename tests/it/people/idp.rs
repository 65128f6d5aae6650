//! The test identity provider: `node tests/idp/provider.mjs <port>` (a real
//! oidc-provider), started per test on a free port and killed on drop, and
//! its authorization-code flow driven with plain HTTP to get ID tokens.
//!
//! Skips (loudly) when node or tests/idp/node_modules is missing, unless
//! `TESSERA_REQUIRE_NODE=1`: then it fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Where the provider's clients redirect (nothing listens there).
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// A running test IdP.
pub struct TestIdp {
    child: Option<Child>,
    /// Its issuer URL, `http://127.0.0.1:<port>`.
    pub issuer: String,
}

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

fn node_ready() -> Result<(), &'static str> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Err("`node` is not on PATH");
    }
    if !idp_dir().join("node_modules/oidc-provider").is_dir() {
        return Err("tests/idp/node_modules is missing (run `npm ci --prefix tests/idp`)");
    }
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestIdp {
    /// Starts the provider, or returns `None` (after saying so) when node or
    /// its packages are missing and `TESSERA_REQUIRE_NODE` is not `1`.
    pub fn start() -> Option<Self> {
        Self::start_with(300)
    }

    /// Like [`start`](Self::start), with ID tokens living `id_token_secs`.
    pub fn start_with(id_token_secs: u64) -> Option<Self> {
        if let Err(why) = node_ready() {
            if std::env::var("TESSERA_REQUIRE_NODE").as_deref() == Ok("1") {
                panic!("TESSERA_REQUIRE_NODE=1 but {why}");
            }
            eprintln!(
                "\n*** SKIPPED: {why}, so this identity provider test did not run \
                 (bash scripts/test.sh installs it; TESSERA_REQUIRE_NODE=1 makes this fail). ***\n"
            );
            return None;
        }
        // Another process may take the port first: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("node")
                .arg(idp_dir().join("provider.mjs"))
                .arg(port.to_string())
                .arg(id_token_secs.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn node tests/idp/provider.mjs");
            let stdout = child.stdout.take().expect("the provider's stdout");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            let issuer = format!("http://127.0.0.1:{port}");
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.trim() == format!("ready {issuer}") => {
                    return Some(Self {
                        child: Some(child),
                        issuer,
                    });
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("the test identity provider did not start");
    }

    /// Stops the provider (its port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// An ID token for `person` issued to `client` (`tessera-eddsa`,
    /// `tessera-es256`, `tessera-rs256` or `other-app`), through the real
    /// authorization-code flow with PKCE: the login form, the consent form,
    /// and the code exchanged at the token endpoint.
    pub async fn id_token(&self, client: &str, person: &str, scope: &str) -> String {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut next = reqwest::Url::parse_with_params(
            &format!("{}/auth", self.issuer),
            [
                ("client_id", client),
                ("response_type", "code"),
                ("scope", scope),
                ("redirect_uri", REDIRECT_URI),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("state", "state-1"),
                ("nonce", "nonce-1"),
            ],
        )
        .unwrap();
        let mut code = None;
        for _ in 0..10 {
            let resp = http.get(next.clone()).send().await.unwrap();
            let resp = if next.path().starts_with("/interaction/") {
                let page = resp.text().await.unwrap();
                let form: Vec<(&str, &str)> = if page.contains(r#"name="prompt" value="login""#) {
                    vec![("prompt", "login"), ("login", person), ("password", "test")]
                } else {
                    assert!(
                        page.contains("Authorize"),
                        "neither login nor consent: {page}"
                    );
                    vec![("prompt", "consent")]
                };
                http.post(next.clone()).form(&form).send().await.unwrap()
            } else {
                resp
            };
            assert!(
                resp.status().is_redirection(),
                "{}: {}",
                next,
                resp.status()
            );
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            next = next.join(&location).unwrap();
            if location.starts_with(REDIRECT_URI) {
                let pairs: Vec<(String, String)> = next.query_pairs().into_owned().collect();
                assert!(
                    pairs.contains(&("state".into(), "state-1".into())),
                    "{location}"
                );
                code = pairs.into_iter().find(|(k, _)| k == "code").map(|(_, v)| v);
                break;
            }
        }
        let code = code.expect("the flow ends at the redirect URI with a code");
        let secret = format!("{client}-secret");
        let resp = http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", client),
                ("client_secret", secret.as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "token endpoint: {}",
            resp.status()
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        body["id_token"].as_str().expect("an id_token").to_owned()
    }
}

impl TestIdp {
    /// An identity assertion (ID-JAG) from the IdP's token-exchange grant:
    /// `client` (`tessera-eddsa`, ...) sends `id_token` (issued to it) and
    /// asks for a JAG for `audience` (Tessera's issuer URL) naming `agent`
    /// as `client_id`; `extra` adds `scope`, `resource`, `cnf_jkt` or
    /// `jag_typ`.
    pub async fn id_jag(
        &self,
        client: &str,
        id_token: &str,
        audience: &str,
        agent: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let secret = format!("{client}-secret");
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("client_id", client),
            ("client_secret", secret.as_str()),
            ("subject_token", id_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:id-jag",
            ),
            ("audience", audience),
            ("client_id_at_audience", agent),
        ];
        form.extend_from_slice(extra);
        let resp = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(status.is_success(), "IdP token exchange: {status} {body}");
        assert_eq!(
            body["issued_token_type"],
            "urn:ietf:params:oauth:token-type:id-jag"
        );
        body["access_token"].as_str().expect("a JAG").to_owned()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.stop();
    }
}
