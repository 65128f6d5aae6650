//! What the HTTP client commands say when the issuer cannot be reached or
//! refuses a credential: the cause, and the next step.

use std::time::Duration;

use super::Failure;

/// How long to wait for a connection to the issuer.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a quick request (the feed check, the key set probe) waits in all.
pub(super) const QUICK_TIMEOUT: Duration = Duration::from_secs(5);

/// A request to the issuer at `base` that got no answer (after waiting up to
/// `waited`), as one line that names the cause and what to try.
pub(super) fn unreachable(e: &reqwest::Error, base: &str, waited: Duration) -> Failure {
    // A password in the URL is not repeated on the terminal.
    let base = crate::verify::follow::redact_url(base.trim_end_matches('/'));
    let refused =
        io_cause(e).map(std::io::Error::kind) == Some(std::io::ErrorKind::ConnectionRefused);
    let message = if refused {
        format!(
            "cannot connect to the issuer at {base}: connection refused; is `tessera serve` \
             running at {base}?"
        )
    } else if e.is_timeout() {
        format!(
            "the issuer at {base} did not answer within {} s; is it running and reachable, and \
             is the URL right?",
            waited.as_secs()
        )
    } else if e.is_connect() {
        let cause = io_cause(e).map_or_else(|| innermost(e), ToString::to_string);
        format!(
            "cannot connect to the issuer at {base}: {cause}; is `tessera serve` running at \
             {base}?"
        )
    } else {
        format!("no answer from the issuer at {base}: {}", innermost(e))
    };
    Failure::new(message)
}

/// The I/O error under a request error, if any.
fn io_cause(e: &reqwest::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

/// The deepest cause of an error, without the URL (it is named already).
fn innermost(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// The OAuth `error_description` (else `error`) of an error answer.
pub(super) fn description(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["error_description"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .unwrap_or("no reason given")
        .to_owned()
}

/// A client for one short request: no answer within [`QUICK_TIMEOUT`] is an answer.
fn quick_client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(QUICK_TIMEOUT)
        .build()
        .map_err(|e| Failure::new(format!("HTTP client: {e}")))
}

/// Reads one page of the issuer's revocation feed with `feed_token`, so
/// that a refused token, an issuer that is not running or one that does not
/// answer is reported at once, by its cause, instead of as a follower that
/// never catches up.
pub(super) async fn check_feed(issuer: &str, feed_token: &str) -> Result<(), Failure> {
    let base = issuer.trim_end_matches('/');
    let client = quick_client()?;
    let response = client
        .get(format!("{base}/v1/revocations"))
        .query(&[("limit", "1")])
        .bearer_auth(feed_token)
        .send()
        .await
        .map_err(|e| unreachable(&e, base, QUICK_TIMEOUT))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.bytes().await.unwrap_or_default();
    let reason = description(&body);
    Err(match status.as_u16() {
        401 | 403 => Failure::new(format!(
            "the feed token was refused: {reason} (print a fresh one with `tessera admin token \
             --feed --data-dir <the issuer's data directory>`)"
        )),
        code => Failure::new(format!(
            "the issuer at {} answered {code} to the revocation feed: {reason}",
            crate::verify::follow::redact_url(base)
        )),
    })
}

/// Fetches `url` once and reports why there was no answer, if there was none.
pub(super) async fn probe(url: &str) -> Result<(), Failure> {
    let base = url.find("/.well-known/").map_or(url, |i| &url[..i]);
    let client = quick_client()?;
    client
        .get(url)
        .send()
        .await
        .map(drop)
        .map_err(|e| unreachable(&e, base, QUICK_TIMEOUT))
}
