//! What happens once a request for approval is decided (DESIGN.md, "Human
//! approval, amounts and budgets"; docs/approval.md): the decision is
//! audited, and in OpenID CIBA ping mode Tessera POSTs `{"auth_req_id": …}`
//! to the agent's registered `notification_endpoint` with
//! `Authorization: Bearer <client_notification_token>`.
//!
//! Every page or API that decides calls [`decide`] (or, having called
//! `ApprovalStore::decide` itself, [`decided`]). Delivery runs in a tokio
//! task: at most [`MAX_ATTEMPTS`] attempts with backoff from
//! [`FIRST_DELAY`] doubling up to [`MAX_DELAY`], each attempt audited
//! (`notification delivered` / `notification failed`), at most
//! [`MAX_IN_FLIGHT`] deliveries at once (beyond that a delivery is audited
//! as failed and the agent polls instead). The token is never logged.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::error::ApiError;
use super::oauth::{audit, event};
use super::state::AppState;
use crate::records::AuditOutcome;
use crate::store::{Approval, AuditKind, Decided, Decider, Verdict};

/// Most attempts at one notification.
pub const MAX_ATTEMPTS: u32 = 5;
/// The wait before the second attempt; it doubles after each failure.
pub const FIRST_DELAY: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most notifications being delivered at once, process-wide.
pub const MAX_IN_FLIGHT: usize = 64;

/// Longest `notification_endpoint`, in bytes.
pub const MAX_ENDPOINT: usize = 2048;

/// Checks an agent's `notification_endpoint`: an absolute `https://` URL
/// without credentials or fragment, or `http://` on a loopback host when
/// `loopback_http` (`[approval] loopback_http_notifications`) allows it.
pub fn check_endpoint(url: &str, loopback_http: bool) -> Result<String, String> {
    if url.len() > MAX_ENDPOINT {
        return Err(format!(
            "notification_endpoint is longer than {MAX_ENDPOINT} bytes"
        ));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("notification_endpoint is not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("notification_endpoint must not hold credentials".into());
    }
    if parsed.fragment().is_some() {
        return Err("notification_endpoint must not have a fragment".into());
    }
    let Some(host) = parsed.host_str() else {
        return Err("notification_endpoint has no host".into());
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed.to_string()),
        "http" if loopback && loopback_http => Ok(parsed.to_string()),
        "http" if loopback => Err("notification_endpoint: http on loopback needs [approval] \
             loopback_http_notifications = true; otherwise use https"
            .into()),
        _ => Err("notification_endpoint must be an https URL".into()),
    }
}

struct Sender {
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
}

fn sender() -> &'static Sender {
    static SENDER: OnceLock<Sender> = OnceLock::new();
    SENDER.get_or_init(|| Sender {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default(),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
    })
}

/// Decides request `id` once, then (when this call decided it) audits the
/// decision and starts the ping. The caller maps the other outcomes
/// (`NotYours`, `AlreadyDecided`, `Expired`, `Unknown`) to its own answer;
/// they are not audited here.
pub async fn decide(
    state: &AppState,
    id: &str,
    by: &Decider,
    verdict: Verdict,
) -> Result<Decided, ApiError> {
    let decided_now = state
        .stores
        .approvals
        .decide(id, by, verdict, state.now())
        .await?;
    if let Decided::Decided(approval) = &decided_now {
        decided(state, approval, verdict, by).await?;
    }
    Ok(decided_now)
}

/// Audits a decision just recorded (`approval approved` / `approval
/// denied`, with who decided as the reason) and starts the ping when the
/// agent asked for one.
pub async fn decided(
    state: &AppState,
    approval: &Approval,
    verdict: Verdict,
    by: &Decider,
) -> Result<(), ApiError> {
    let outcome = match verdict {
        Verdict::Approve => AuditOutcome::ApprovalApproved,
        Verdict::Deny => AuditOutcome::ApprovalDenied,
    };
    let mut ev = super::ciba::approval_event(state, approval, outcome);
    ev.reason = Some(match by {
        Decider::Person(p) => format!("decided by the person {p}"),
        Decider::Operator(name) => format!("decided by the operator {name}"),
    });
    audit(state, ev).await?;
    ping(state, approval).await;
    Ok(())
}

/// Starts the ping for `approval` when it holds a `client_notification_token`
/// and its agent a `notification_endpoint`.
async fn ping(state: &AppState, approval: &Approval) {
    let Some(token) = approval.notification_token.clone() else {
        return;
    };
    let endpoint = match state.stores.agents.get(approval.agent.as_str()).await {
        Ok(Some(agent)) => agent.notification_endpoint,
        Ok(None) => None,
        Err(e) => {
            attempt_event(
                state,
                approval,
                "ping",
                0,
                Err(format!("reading the agent: {e}")),
            )
            .await;
            return;
        }
    };
    let Some(endpoint) = endpoint else {
        attempt_event(
            state,
            approval,
            "ping",
            0,
            Err("the agent has no notification_endpoint".into()),
        )
        .await;
        return;
    };
    let body = serde_json::json!({ "auth_req_id": approval.id }).to_string();
    let post = Post {
        what: "ping",
        url: endpoint,
        headers: vec![(
            reqwest::header::AUTHORIZATION.as_str().to_owned(),
            format!("Bearer {token}"),
        )],
        body,
    };
    deliver(state.clone(), approval.clone(), post);
}

/// One notification to send.
pub(crate) struct Post {
    /// What it is, for the audit: `ping` or `webhook`.
    pub what: &'static str,
    /// Where.
    pub url: String,
    /// Extra headers (never logged: they may hold a bearer token).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

/// Sends `post` in a task, with retries and one audit event per attempt.
pub(crate) fn deliver(state: AppState, approval: Approval, post: Post) {
    let Ok(permit) = sender().in_flight.clone().try_acquire_owned() else {
        tokio::spawn(async move {
            let reason = format!("more than {MAX_IN_FLIGHT} notifications in flight");
            attempt_event(&state, &approval, post.what, 0, Err(reason)).await;
        });
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut delay = FIRST_DELAY;
        for attempt in 1..=MAX_ATTEMPTS {
            let result = send(&post).await;
            let ok = result.is_ok();
            attempt_event(&state, &approval, post.what, attempt, result).await;
            if ok {
                return;
            }
            if attempt < MAX_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    });
}

/// One attempt: `Ok` on a 2xx answer.
async fn send(post: &Post) -> Result<(), String> {
    let mut req = sender()
        .http
        .post(&post.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(post.body.clone());
    for (name, value) in &post.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("the receiver answered {}", resp.status().as_u16())),
        // Without the URL: reqwest's message may include it, and nothing
        // else here is secret, but keep the reason short and fixed.
        Err(e) if e.is_timeout() => Err("the receiver did not answer in time".into()),
        Err(e) if e.is_connect() => Err("could not connect to the receiver".into()),
        Err(_) => Err("the request to the receiver failed".into()),
    }
}

/// Audits one attempt (attempt 0: none could be made).
async fn attempt_event(
    state: &AppState,
    approval: &Approval,
    what: &str,
    attempt: u32,
    result: Result<(), String>,
) {
    let outcome = if result.is_ok() {
        AuditOutcome::NotificationDelivered
    } else {
        AuditOutcome::NotificationFailed
    };
    let mut ev = event(state, AuditKind::Approval, outcome);
    ev.agent = Some(approval.agent.to_string());
    ev.person = Some(approval.person.clone());
    ev.approval_id = Some(approval.id.clone());
    ev.reason = Some(match result {
        Ok(()) => format!("{what}, attempt {attempt}"),
        Err(why) => format!("{what}, attempt {attempt}: {why}"),
    });
    if let Err(e) = audit(state, ev).await {
        tracing::warn!(error = %e, "could not audit a notification attempt");
    }
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn notification_endpoints_are_https_or_allowed_loopback_http() {
        assert!(check_endpoint("https://agent.example/cb", false).is_ok());
        assert!(check_endpoint("http://127.0.0.1:9/cb", true).is_ok());
        assert!(check_endpoint("http://[::1]:9/cb", true).is_ok());
        assert!(check_endpoint("http://localhost:9/cb", true).is_ok());
        for (url, loopback_http) in [
            ("http://127.0.0.1:9/cb", false),
            ("http://agent.example/cb", true),
            ("https://u:p@agent.example/cb", false),
            ("https://agent.example/cb#x", false),
            ("ftp://agent.example/cb", true),
            ("not a url", true),
        ] {
            assert!(check_endpoint(url, loopback_http).is_err(), "{url}");
        }
        let long = format!("https://agent.example/{}", "a".repeat(2100));
        assert!(check_endpoint(&long, false).is_err());
    }
}
