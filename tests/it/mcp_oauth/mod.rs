//! Stock MCP SDK clients connect by themselves (issue 12): the official
//! TypeScript SDK (`examples/js/oauth-connect.mjs`) and Python SDK
//! (`examples/python/oauth_connect.py`) OAuth clients, identified by a
//! Client ID Metadata Document served over HTTPS by this test
//! (`tests/browser/cimd-server.mjs`), reach `examples/mcp_tool_server.rs`
//! from nothing but its URL: 401 -> discovery -> Tessera's authorize ->
//! login at the real test IdP (oidc-provider) -> consent -> token -> tool
//! call, with the person's browser played by chromium
//! (`tests/browser/mcp-login.mjs`, playwright-core).
//!
//! Each part is real and started here on free ports. Without chromium,
//! node, playwright-core or the Python SDK the tests say so loudly and pass,
//! unless `TESSERA_REQUIRE_BROWSER=1` / `TESSERA_REQUIRE_NODE=1` /
//! `TESSERA_REQUIRE_PYTHON=1`.

mod sdk;
mod usage;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::server::helpers::TestApp;

// The example's `main` and flags are not used here; verify::mcp and
// interop_js::mcp load the same file.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../../examples/mcp_tool_server.rs"]
mod example;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn browser_dir() -> PathBuf {
    root().join("tests/browser")
}

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Whether chromium, node, playwright-core and the SDK's packages are
/// here; a loud skip (or a failure when required) otherwise.
pub fn browser_ready() -> bool {
    let chromium = std::env::var_os("TESSERA_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let problem = if !node {
        Some("`node` is not on PATH")
    } else if !chromium.is_file() {
        Some("chromium is not installed (apt-get install chromium)")
    } else if !browser_dir().join("node_modules/playwright-core").is_dir()
        || !browser_dir().join("lib.mjs").is_file()
    {
        Some("tests/browser/node_modules is missing (run `npm ci --prefix tests/browser`)")
    } else if !root()
        .join("examples/js/node_modules/@modelcontextprotocol/sdk")
        .is_dir()
    {
        Some("examples/js/node_modules is missing (run `npm ci --prefix examples/js`)")
    } else {
        None
    };
    let Some(problem) = problem else {
        return true;
    };
    assert!(
        !required("TESSERA_REQUIRE_BROWSER") && !required("TESSERA_REQUIRE_NODE"),
        "TESSERA_REQUIRE_BROWSER/NODE=1 but {problem}"
    );
    eprintln!(
        "\n*** SKIPPED: {problem}, so the MCP SDK browser test did not run \
         (bash scripts/test.sh installs it; TESSERA_REQUIRE_BROWSER=1 makes this fail). ***\n"
    );
    false
}

/// A loopback port nobody listens on now (for a client's redirect URI).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The HTTPS server of the clients' metadata documents, with a fresh
/// self-signed certificate for 127.0.0.1 (`openssl`); killed on drop.
pub struct CimdServer {
    child: Child,
    dir: TempDir,
    /// `https://127.0.0.1:<port>`.
    pub origin: String,
}

impl Drop for CimdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CimdServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        // A test root (ca.pem, what the issuer trusts) and a server
        // certificate it signs: rustls refuses a CA certificate as the
        // server's own, so one self-signed certificate will not do.
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-days",
                    "1",
                    "-subj",
                    "/CN=Tessera test root",
                    "-keyout",
                    "ca-key.pem",
                    "-out",
                    "ca.pem",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "server.csr",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ]);
        let docs = dir.path().join("docs");
        std::fs::create_dir(&docs).unwrap();
        let mut child = Command::new("node")
            .arg(browser_dir().join("cimd-server.mjs"))
            .args([&cert, &key, &docs])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("cimd-server.mjs printed {line:?}"));
        Self {
            child,
            dir,
            origin: format!("https://127.0.0.1:{port}"),
        }
    }

    /// The root certificate (PEM) the issuer must trust to fetch the
    /// documents (`[clients] extra_root_cert_file`).
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Publishes a public client's document at `/<name>.json` redirecting
    /// to `http://127.0.0.1:<port>/callback`; returns its URL (the client id).
    /// Serves `doc` (its `client_id` set to its URL) as `<name>.json`.
    pub fn publish_json(&self, name: &str, mut doc: Value) -> String {
        let url = format!("{}/{name}.json", self.origin);
        doc["client_id"] = json!(url);
        std::fs::write(
            self.dir.path().join("docs").join(format!("{name}.json")),
            doc.to_string(),
        )
        .unwrap();
        url
    }

    /// Serves `value` as it is at `/<name>` (a key set, say); returns its URL.
    pub fn publish_raw(&self, name: &str, value: &Value) -> String {
        std::fs::write(self.dir.path().join("docs").join(name), value.to_string()).unwrap();
        format!("{}/{name}", self.origin)
    }

    pub fn publish(&self, name: &str, client_name: &str, port: u16) -> String {
        let url = format!("{}/{name}.json", self.origin);
        let doc = json!({
            "client_id": url,
            "client_name": client_name,
            "client_uri": "https://github.com/modelcontextprotocol",
            "redirect_uris": [format!("http://127.0.0.1:{port}/callback")],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        std::fs::write(
            self.dir.path().join("docs").join(format!("{name}.json")),
            doc.to_string(),
        )
        .unwrap();
        url
    }
}

/// The example MCP server on a loopback port; stops when dropped.
pub struct McpServer {
    pub url: String,
    _stop: oneshot::Sender<()>,
}

impl McpServer {
    /// Binds first: the URL is the audience the roles and tokens name.
    pub async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        (listener, url)
    }

    pub async fn start(listener: tokio::net::TcpListener, url: &str, issuer: &TestApp) -> Self {
        let cap =
            tessera::server::admin::feed_capability(tessera::token::Lifetime::parse("1h").unwrap())
                .unwrap();
        let feed = tessera::token::mint(
            &cap,
            issuer.state.ring().active(),
            crate::server::helpers::now(),
        )
        .unwrap()
        .token;
        let config = example::Config {
            public_url: url.to_owned(),
            issuer: issuer.base.clone(),
            revocations: example::RevocationSource::Feed { token: feed },
        };
        let router = example::app(&config).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: url.to_owned(),
            _stop: stop,
        }
    }
}

/// Which SDK's client runs.
#[derive(Debug, Clone)]
pub enum Sdk {
    /// `node examples/js/oauth-connect.mjs`.
    TypeScript,
    /// `<python> examples/python/oauth_connect.py`.
    Python(PathBuf),
}

/// One client, with its own state file and redirect port, as a person's
/// desktop client would be.
pub struct SdkClient {
    pub sdk: Sdk,
    pub client_id: String,
    pub port: u16,
    pub store: PathBuf,
    _dir: TempDir,
}

/// What the client printed.
#[derive(Debug)]
pub struct Outcome {
    pub json: Value,
    #[allow(dead_code)] // read through `Debug`, in assertion messages
    pub stderr: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.json["ok"] == true
    }

    pub fn text(&self) -> String {
        self.json["content"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// (status, WWW-Authenticate) of the refused HTTP requests.
    pub fn refusals(&self) -> Vec<(u64, String)> {
        self.json["http_refusals"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|r| {
                        (
                            r["status"].as_u64().unwrap_or(0),
                            r["www_authenticate"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The scopes of the authorization requests the SDK made.
    pub fn authorized_scopes(&self) -> Vec<String> {
        self.json["authorizations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|a| a["scope"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How the person answers in the browser.
#[derive(Debug, Clone, Copy)]
pub enum Person<'a> {
    /// Logs in as this person and approves these scopes (`all`, or a
    /// space-separated subset); screenshots into the directory, if any.
    Approves(&'a str, &'a str, Option<&'a Path>),
    /// Nobody is there: any new authorization is refused (`--no-login`).
    Absent,
}

impl SdkClient {
    pub fn new(sdk: Sdk, cimd: &CimdServer, name: &str) -> Self {
        let port = free_port();
        let label = match sdk {
            Sdk::TypeScript => "Example MCP client (TypeScript SDK)",
            Sdk::Python(_) => "Example MCP client (Python SDK)",
        };
        let client_id = cimd.publish(name, label, port);
        let dir = tempfile::tempdir().unwrap();
        Self {
            sdk,
            client_id,
            port,
            store: dir.path().join("client-state.json"),
            _dir: dir,
        }
    }

    /// The access token in the client's store (to revoke it at the issuer).
    pub fn stored_access_token(&self) -> String {
        let store: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.store).unwrap()).unwrap();
        store["tokens"]["access_token"]
            .as_str()
            .expect("a stored access token")
            .to_owned()
    }

    /// Runs the client once: connect (authorizing as `person` says) and
    /// call `tool` with `args`.
    pub async fn call(&self, server: &str, person: Person<'_>, tool: &str, args: Value) -> Outcome {
        let mut cmd = match &self.sdk {
            Sdk::TypeScript => {
                let mut c = tokio::process::Command::new("node");
                c.arg(root().join("examples/js/oauth-connect.mjs"));
                c
            }
            Sdk::Python(python) => {
                let mut c = tokio::process::Command::new(python);
                c.arg(root().join("examples/python/oauth_connect.py"));
                c
            }
        };
        cmd.args(["--server", server, "--client-id", &self.client_id])
            .args(["--redirect-port", &self.port.to_string()])
            .arg("--store")
            .arg(&self.store);
        match person {
            Person::Approves(who, scopes, shots) => {
                let opener = format!("node {}", browser_dir().join("mcp-login.mjs").display());
                cmd.args(["--open", &opener])
                    .env("TESSERA_PERSON", who)
                    .env("TESSERA_APPROVE", scopes)
                    .env("TESSERA_REMEMBER", "1");
                match shots {
                    Some(dir) => cmd.env("TESSERA_SCREENSHOTS", dir),
                    None => cmd.env_remove("TESSERA_SCREENSHOTS"),
                };
            }
            Person::Absent => {
                cmd.arg("--no-login");
            }
        }
        cmd.arg(tool).arg(args.to_string()).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(150), cmd.output())
            .await
            .expect("the MCP client did not finish within 150 s")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "the {:?} client printed no JSON ({e}): stdout {stdout:?}, stderr {stderr}",
                self.sdk
            )
        });
        Outcome { json, stderr }
    }
}
