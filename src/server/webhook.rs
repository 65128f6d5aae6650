//! The person's webhook (docs/approval.md, "The person's webhook"): when a
//! request for approval is recorded, Tessera POSTs a [`Notice`] (what is
//! asked and the approval page's URL) to the operator's `[approval]
//! webhook_url`, signed with the secret in `webhook_secret_file`:
//!
//! ```text
//! Tessera-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! ```
//!
//! The receiver checks it with [`verify`] (or `tessera webhook verify`):
//! the MAC over the exact body, and `t` within a tolerance of its clock, so
//! a captured notice cannot be replayed later. Delivery goes through
//! [`notify::deliver`]: bounded attempts with backoff, bounded in flight,
//! every attempt audited (`webhook, attempt N`); the secret is never
//! logged nor audited.

use std::path::Path;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::notify::{self, Post};
use super::oauth::{audit, event};
use super::state::AppState;
use crate::records::AuditOutcome;
use crate::store::{Approval, AuditKind};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Tessera-Signature";
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;
/// Largest secret file read, in bytes.
const MAX_SECRET: u64 = 4096;

/// What the webhook receives (the JSON body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The request's id (the agent's `auth_req_id`, the approval id).
    pub auth_req_id: String,
    /// Where the person approves or denies: `<issuer_url>/approvals/<id>`.
    pub approval_url: String,
    /// The person asked.
    pub person: NoticePerson,
    /// The agents, oldest first; the last one asked.
    pub agent_chain: Vec<String>,
    /// The action.
    pub action: String,
    /// The resource (or resource prefix).
    pub resource: String,
    /// The tool server, if named.
    pub audience: Option<String>,
    /// The largest amount of one operation, if any.
    pub amount: Option<NoticeAmount>,
    /// The agent's message for the person, if any.
    pub binding_message: Option<String>,
    /// After this the request can no longer be decided (RFC 3339).
    pub expires_at: DateTime<Utc>,
}

/// A person in a [`Notice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticePerson {
    /// Their identity provider's issuer URL.
    pub issuer: String,
    /// Their subject there.
    pub subject: String,
}

/// An amount in a [`Notice`]: the currency and integer minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeAmount {
    /// ISO 4217 code.
    pub currency: String,
    /// Minor units (cents for EUR).
    pub value: i64,
}

impl Notice {
    /// The notice of `approval` on the issuer at `issuer_url`.
    pub fn of(approval: &Approval, issuer_url: &str) -> Self {
        let c = &approval.capability;
        Self {
            auth_req_id: approval.id.clone(),
            approval_url: format!("{issuer_url}/approvals/{}", approval.id),
            person: NoticePerson {
                issuer: approval.person.issuer().to_owned(),
                subject: approval.person.subject().to_owned(),
            },
            agent_chain: approval
                .prior_actors
                .iter()
                .chain(std::iter::once(&approval.agent))
                .map(ToString::to_string)
                .collect(),
            action: c.action.to_string(),
            resource: c.resource.to_string(),
            audience: c.audience.as_ref().map(ToString::to_string),
            amount: c.amount.as_ref().map(|a| NoticeAmount {
                currency: a.currency().to_owned(),
                value: a.minor(),
            }),
            binding_message: approval.binding_message.clone(),
            expires_at: approval.expires_at,
        }
    }
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<digits>,v1=<64 hex digits>[,...]`.
    #[error("malformed Tessera-Signature header: {0}")]
    Malformed(&'static str),
    /// No `v1` is the MAC of this body under this secret.
    #[error("bad signature: not made with this secret over this body")]
    BadSignature,
    /// Signed longer ago than the tolerance: a replay, or a late delivery.
    #[error("timestamp too old: signed {age} s ago, tolerance {tolerance} s (a replay?)")]
    TooOld {
        /// Seconds since `t`.
        age: i64,
        /// The tolerance, in seconds.
        tolerance: u64,
    },
    /// Signed later than the receiver's clock plus the tolerance.
    #[error("timestamp {ahead} s in the future, tolerance {tolerance} s")]
    InFuture {
        /// Seconds until `t`.
        ahead: i64,
        /// The tolerance, in seconds.
        tolerance: u64,
    },
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

/// The header value signing `body` at unix time `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let hex = mac(secret, t, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={t},v1={hex}")
}

/// The parsed header: `t` and every `v1` (other keys are ignored).
fn parse(header: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let mut value = header.trim();
    if let Some((name, rest)) = value.split_once(':') {
        if !name.trim().eq_ignore_ascii_case(SIGNATURE_HEADER) {
            return Err(SignatureError::Malformed("not a Tessera-Signature header"));
        }
        value = rest.trim();
    }
    let (mut t, mut v1) = (None, Vec::new());
    for part in value.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value pairs"))?;
        match k {
            "t" => {
                if t.is_some() {
                    return Err(SignatureError::Malformed("t given twice"));
                }
                if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed("t must be unix seconds"));
                }
                t = v.parse::<i64>().ok();
            }
            "v1" => match hex::decode(v) {
                Ok(b) if b.len() == 32 => v1.push(b),
                _ => return Err(SignatureError::Malformed("v1 must be 64 hex digits")),
            },
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed("no t"))?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed("no v1"));
    }
    Ok((t, v1))
}

/// Checks `header` (the value, or the whole `Tessera-Signature: ...`
/// line) for `body` under `secret`, at unix time `now`: one `v1` is the MAC
/// (compared in constant time), and `t` is within `tolerance_secs` of `now`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let (t, given) = parse(header)?;
    let authentic = given.iter().any(|g| {
        mac(secret, t, body)
            .map(|m| m.verify_slice(g).is_ok())
            .unwrap_or(false)
    });
    if !authentic {
        return Err(SignatureError::BadSignature);
    }
    let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    let age = now.saturating_sub(t);
    if age > tolerance {
        return Err(SignatureError::TooOld {
            age,
            tolerance: tolerance_secs,
        });
    }
    if -age > tolerance {
        return Err(SignatureError::InFuture {
            ahead: -age,
            tolerance: tolerance_secs,
        });
    }
    Ok(())
}

/// Reads a secret file: its bytes without surrounding whitespace, at least
/// [`MIN_SECRET`] of them. The error names the file, never its content.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let cannot = || format!("webhook secret file {}: cannot be read", path.display());
    let file = std::fs::File::open(path).map_err(|_| cannot())?;
    let mut raw = Vec::new();
    file.take(MAX_SECRET + 1)
        .read_to_end(&mut raw)
        .map_err(|_| cannot())?;
    if raw.len() as u64 > MAX_SECRET {
        return Err(format!(
            "webhook secret file {}: longer than {MAX_SECRET} bytes",
            path.display()
        ));
    }
    let secret = raw.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET {
        return Err(format!(
            "webhook secret file {}: the secret must be at least {MIN_SECRET} bytes",
            path.display()
        ));
    }
    Ok(secret)
}

/// Checks `[approval] webhook_url` as notification endpoints are checked:
/// https, or http on loopback when `loopback_http` allows it.
pub fn check_url(url: &str, loopback_http: bool) -> Result<String, String> {
    notify::check_endpoint(url, loopback_http)
        .map_err(|e| e.replace("notification_endpoint", "[approval] webhook_url"))
}

/// Sends the signed notice of a request just recorded, when the operator
/// configured a webhook. Never fails the request: a failure is audited.
pub async fn requested(state: &AppState, approval: &Approval) {
    let config = &state.config.approval;
    let (Some(url), Some(file)) = (&config.webhook_url, &config.webhook_secret_file) else {
        return;
    };
    let secret = match read_secret(file) {
        Ok(s) => s,
        Err(why) => return cannot_send(state, approval, why).await,
    };
    let body = match serde_json::to_string(&Notice::of(approval, &state.issuer)) {
        Ok(b) => b,
        Err(e) => return cannot_send(state, approval, e.to_string()).await,
    };
    // One signature for every attempt: they all end within a minute.
    let signature = sign(&secret, state.now().timestamp(), body.as_bytes());
    let post = Post {
        what: "webhook",
        url: url.clone(),
        headers: vec![(SIGNATURE_HEADER.to_owned(), signature)],
        body,
    };
    notify::deliver(state.clone(), approval.clone(), post);
}

/// Audits a webhook that could not be attempted (attempt 0).
async fn cannot_send(state: &AppState, approval: &Approval, why: String) {
    let mut ev = event(state, AuditKind::Approval, AuditOutcome::NotificationFailed);
    ev.agent = Some(approval.agent.to_string());
    ev.person = Some(approval.person.clone());
    ev.approval_id = Some(approval.id.clone());
    ev.reason = Some(format!("webhook, attempt 0: {why}"));
    if let Err(e) = audit(state, ev).await {
        tracing::warn!(error = %e, "could not audit a webhook failure");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const BODY: &[u8] = br#"{"auth_req_id":"ab"}"#;

    #[test]
    fn a_signature_checks_with_the_secret_the_body_and_a_fresh_timestamp() {
        let h = sign(SECRET, 1_800_000_000, BODY);
        assert!(
            h.starts_with("t=1800000000,v1=") && h.len() == 16 + 64,
            "{h}"
        );
        assert_eq!(verify(SECRET, &h, BODY, 1_800_000_000, 300), Ok(()));
        let line = format!("Tessera-Signature: {h}");
        assert_eq!(verify(SECRET, &line, BODY, 1_800_000_300, 300), Ok(()));
        let lower = format!("tessera-signature:{h}");
        assert_eq!(verify(SECRET, &lower, BODY, 1_800_000_000, 300), Ok(()));
        // Another key, a rotated secret beside the right one: accepted.
        let rotated = format!("{h},v1={},v0=x", "00".repeat(32));
        assert_eq!(verify(SECRET, &rotated, BODY, 1_800_000_000, 300), Ok(()));
    }

    #[test]
    fn forged_altered_replayed_and_malformed_signatures_are_refused() {
        let h = sign(SECRET, 1_800_000_000, BODY);
        let bad = SignatureError::BadSignature;
        assert_eq!(
            verify(
                b"another secret of 32 bytes......",
                &h,
                BODY,
                1_800_000_000,
                300
            ),
            Err(bad.clone())
        );
        assert_eq!(
            verify(SECRET, &h, b"{\"auth_req_id\":\"ac\"}", 1_800_000_000, 300),
            Err(bad.clone())
        );
        // Moving t breaks the MAC.
        let moved = h.replace("t=1800000000", "t=1800000500");
        assert_eq!(verify(SECRET, &moved, BODY, 1_800_000_500, 300), Err(bad));
        assert_eq!(
            verify(SECRET, &h, BODY, 1_800_000_301, 300),
            Err(SignatureError::TooOld {
                age: 301,
                tolerance: 300
            })
        );
        assert_eq!(
            verify(SECRET, &h, BODY, 1_799_999_000, 300),
            Err(SignatureError::InFuture {
                ahead: 1000,
                tolerance: 300
            })
        );
        for header in [
            "",
            "t=1800000000",
            "v1=00",
            "t=abc,v1=00",
            "t=-5,v1=00",
            "t=1,t=2,v1=00",
            "nonsense",
            "Other-Header: t=1,v1=00",
            &format!("t=1800000000,v1={}", "zz".repeat(32)),
        ] {
            assert!(
                matches!(
                    verify(SECRET, header, BODY, 1_800_000_000, 300),
                    Err(SignatureError::Malformed(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn a_secret_file_is_trimmed_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "0123456789abcdef0123\n").unwrap();
        assert_eq!(read_secret(&f).unwrap(), b"0123456789abcdef0123");
        std::fs::write(&f, "short\n").unwrap();
        let e = read_secret(&f).unwrap_err();
        assert!(e.contains("at least 16") && !e.contains("short\n"), "{e}");
        assert!(read_secret(&dir.path().join("none")).is_err());
    }

    #[test]
    fn webhook_urls_are_https_or_allowed_loopback_http() {
        assert!(check_url("https://hooks.example/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        let e = check_url("http://127.0.0.1:9/x", false).unwrap_err();
        assert!(e.contains("[approval] webhook_url"), "{e}");
        assert!(check_url("http://hooks.example/x", true).is_err());
    }
}
