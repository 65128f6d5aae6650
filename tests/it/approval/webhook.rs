//! The person's webhook: a new request is POSTed, signed, to a real
//! receiver started here (which refuses the first attempt), every attempt
//! audited without the secret; the signature checks with
//! `webhook::verify` and with `tessera webhook verify`, which refuses a
//! forged body, a replayed (old) timestamp and a malformed header.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;
use tessera::server::webhook::{self, Notice, NoticeAmount, SIGNATURE_HEADER};
use tessera::server::{Config, Overrides};
use tessera::store::AuditQuery;

use super::flow::{alice, bc_authorize, good, issuer_with};
use crate::server::helpers::eventually;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const SECRET: &str = "webhook-secret-of-the-test-0123456789";

pub(super) type Seen = Arc<Mutex<Vec<(Option<String>, Vec<u8>)>>>;

/// A receiver on a free loopback port that answers its first request 503
/// and records every request (signature header, body bytes).
pub(super) async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let sig = headers
                    .get(SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let mut seen = s.lock().unwrap();
                seen.push((sig, body.to_vec()));
                if seen.len() == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

/// `tessera webhook verify --secret-file <file> --header <header>` with
/// `body` on stdin: (exit code, stdout, stderr).
fn cli_verify(file: &Path, header: &str, body: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .args(["webhook", "verify", "--secret-file"])
        .arg(file)
        .args(["--header", header, "--tolerance", "300s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_request_is_posted_signed_to_the_webhook_retried_audited_and_checkable() {
    let (url, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let (hook, file) = (url.clone(), secret_file.clone());
    let (app, agent) = issuer_with(move |c| {
        c.approval.loopback_http_notifications = true;
        c.approval.webhook_url = Some(hook);
        c.approval.webhook_secret_file = Some(file);
    })
    .await;

    let r = bc_authorize(&app, &agent, &good(json!("12.50EUR"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["auth_req_id"].as_str().unwrap().to_owned();

    let got = eventually(std::time::Duration::from_secs(5), "two attempts", || {
        let seen = seen.clone();
        async move {
            let now = seen.lock().unwrap().clone();
            (now.len() >= 2).then_some(now)
        }
    })
    .await;
    let (sig, body) = &got[1];
    let sig = sig.clone().expect("a Tessera-Signature header");
    let notice: Notice = serde_json::from_slice(body).unwrap();
    assert_eq!(notice.auth_req_id, id);
    assert_eq!(notice.approval_url, app.url(&format!("/approvals/{id}")));
    assert_eq!(
        (
            notice.person.issuer.as_str(),
            notice.person.subject.as_str()
        ),
        (alice().issuer(), "alice")
    );
    assert_eq!(notice.agent_chain, vec![agent.id.clone()]);
    assert_eq!(
        (notice.action.as_str(), notice.resource.as_str()),
        ("payments:create", "invoice:42")
    );
    assert_eq!(
        notice.amount,
        Some(NoticeAmount {
            currency: "EUR".into(),
            value: 1250
        })
    );
    assert_eq!(notice.binding_message.as_deref(), Some("Pay invoice 42"));
    let stored = app.state.stores.approvals.get(&id).await.unwrap().unwrap();
    assert_eq!(notice.expires_at, stored.expires_at);

    // The receiver's check: the library, then the command line.
    let now = app.state.now().timestamp();
    assert_eq!(
        webhook::verify(SECRET.as_bytes(), &sig, body, now, 300),
        Ok(())
    );
    let line = format!("Tessera-Signature: {sig}");
    let (code, out, err) = cli_verify(&secret_file, &line, body);
    assert_eq!((code, out.as_str()), (Some(0), "ok\n"), "{err}");

    // Forged: another body under the same header.
    let mut forged = body.clone();
    forged.extend_from_slice(b" ");
    let (code, out, err) = cli_verify(&secret_file, &line, &forged);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.starts_with("tessera: bad signature"), "{err}");
    // Replayed: an authentic header signed 20 minutes ago.
    let old = webhook::sign(SECRET.as_bytes(), now - 1200, body);
    let (code, _, err) = cli_verify(&secret_file, &old, body);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("tessera: timestamp too old"), "{err}");
    // Malformed.
    let (code, _, err) = cli_verify(&secret_file, "Tessera-Signature: v1=00", body);
    assert_eq!(code, Some(1));
    assert!(err.contains("malformed Tessera-Signature header"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Every attempt audited, the secret in none.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(seen.lock().unwrap().len(), 2, "no attempt after delivery");
    let events: Vec<_> = app
        .state
        .stores
        .audit
        .query(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let attempts: Vec<_> = events
        .iter()
        .filter(|e| e.approval_id.as_deref() == Some(id.as_str()))
        .filter_map(|e| Some((e.outcome.as_str().to_owned(), e.reason.clone()?)))
        .filter(|(_, reason)| reason.starts_with("webhook"))
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].0, "notification failed");
    assert!(attempts[0].1.contains("attempt 1"), "{attempts:?}");
    assert_eq!(attempts[1].0, "notification delivered");
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_secret_is_audited_and_the_request_still_stands() {
    let (url, seen) = receiver().await;
    let (app, agent) = issuer_with(move |c| {
        c.approval.loopback_http_notifications = true;
        c.approval.webhook_url = Some(url);
        c.approval.webhook_secret_file = Some("/nonexistent/webhook.secret".into());
    })
    .await;
    let r = bc_authorize(&app, &agent, &good(json!("12.50EUR"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["auth_req_id"].as_str().unwrap().to_owned();
    let events = app
        .state
        .stores
        .audit
        .query(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let failed = events.iter().any(|(_, e)| {
        e.approval_id.as_deref() == Some(id.as_str())
            && e.outcome.as_str() == "notification failed"
            && e.reason.as_deref().is_some_and(|r| {
                r.starts_with("webhook, attempt 0") && r.contains("cannot be read")
            })
    });
    assert!(failed, "{events:?}");
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn the_webhook_settings_go_together_and_refuse_plain_http_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let load = |text: &str| {
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        Config::load(Some(&f), Vec::new(), Overrides::default())
    };
    let ok = load(
        "[approval]\nwebhook_url = \"https://hooks.example/tessera\"\n\
         webhook_secret_file = \"/etc/tessera/webhook.secret\"\n",
    )
    .unwrap();
    assert_eq!(
        ok.approval.webhook_url.as_deref(),
        Some("https://hooks.example/tessera")
    );
    for bad in [
        "[approval]\nwebhook_url = \"https://hooks.example/tessera\"\n",
        "[approval]\nwebhook_secret_file = \"/etc/tessera/webhook.secret\"\n",
        "[approval]\nwebhook_url = \"http://hooks.example/x\"\nwebhook_secret_file = \"/s\"\n",
        "[approval]\nwebhook_url = \"http://127.0.0.1:9/x\"\nwebhook_secret_file = \"/s\"\n",
    ] {
        let e = load(bad).unwrap_err().to_string();
        assert!(e.contains("webhook"), "{bad}: {e}");
    }
}

/// The next line the receiver prints, within 10 s.
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line within 10 s")
        .unwrap()
        .expect("a line")
}

/// Kills the child on drop.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_receiver_takes_a_signed_notice_and_refuses_a_forged_or_replayed_one() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    let Some(python) = crate::python::python_with("hmac", "Python webhook receiver test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/webhook_receiver.py");
    let mut child = Child(
        tokio::process::Command::new(python)
            .arg(script)
            .arg("--secret-file")
            .arg(&secret_file)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let ready: serde_json::Value = serde_json::from_str(&next_line(&mut lines).await).unwrap();
    assert_eq!(ready["listening"], port);

    let url = format!("http://127.0.0.1:{port}/hook");
    let (hook, file) = (url.clone(), secret_file.clone());
    let (app, agent) = issuer_with(move |c| {
        c.approval.loopback_http_notifications = true;
        c.approval.webhook_url = Some(hook);
        c.approval.webhook_secret_file = Some(file);
    })
    .await;
    let r = bc_authorize(&app, &agent, &good(json!("12.50EUR"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["auth_req_id"].as_str().unwrap().to_owned();
    let got: serde_json::Value = serde_json::from_str(&next_line(&mut lines).await).unwrap();
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["notice"]["auth_req_id"], json!(id));
    assert_eq!(
        got["notice"]["approval_url"],
        json!(app.url(&format!("/approvals/{id}")))
    );

    // Forged and replayed notices are refused with the reason.
    let body = br#"{"auth_req_id":"forged"}"#.to_vec();
    let now = app.state.now().timestamp();
    let post = |header: String, body: Vec<u8>| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header(SIGNATURE_HEADER, header)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let wrong = webhook::sign(b"not the secret at all, no", now, &body);
    let (status, reason) = post(wrong, body.clone()).await;
    assert_eq!(status, 401);
    assert!(reason.starts_with("bad signature"), "{reason}");
    let old = webhook::sign(SECRET.as_bytes(), now - 1200, &body);
    let (status, reason) = post(old, body.clone()).await;
    assert_eq!(status, 401);
    assert!(reason.starts_with("timestamp too old"), "{reason}");
    let (status, reason) = post("t=1".into(), body.clone()).await;
    assert_eq!(status, 401);
    assert!(reason.starts_with("malformed"), "{reason}");
    // An authentic one made here is taken: the check is the same on both sides.
    let fresh = webhook::sign(SECRET.as_bytes(), now, &body);
    assert_eq!(post(fresh, body).await.0, 204);
    let line: serde_json::Value = serde_json::from_str(&next_line(&mut lines).await).unwrap();
    assert_eq!(line["notice"]["auth_req_id"], "forged");
}
