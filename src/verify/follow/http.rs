//! Following the issuer's revocation feed over HTTP.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{
    entry_of, json_problem, redact_url, wall_clock, Backoff, Entry, FollowError, FollowerHandle,
    Retry,
};
use crate::store::Revocation;
use crate::verify::view::RevocationView;

/// Follows the issuer's feed, `GET {issuer}/v1/revocations?after=&wait=&limit=`,
/// with a bearer credential: a feed token (`tessera admin token --feed`,
/// which can read the feed and nothing else) or an admin token.
///
/// Each request long-polls for up to `wait` (whole seconds, 1 to 60); the
/// issuer answers as soon as an entry exists. Staleness peaks at about
/// twice `wait` plus a round trip while the issuer answers.
///
/// ```no_run
/// # async fn run(feed_token: String) -> Result<(), tessera::verify::FollowError> {
/// use tessera::verify::{HttpFollower, RevocationView};
///
/// let view = RevocationView::new();
/// let follower = HttpFollower::new("https://issuer.example", feed_token).spawn(view.clone())?;
/// # drop(follower);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpFollower {
    /// The issuer's base URL, `http(s)://host[:port][/path]`.
    pub issuer: String,
    /// The bearer credential (never logged).
    pub credential: String,
    /// How long one request may wait for new entries (default 1 s,
    /// rounded up to whole seconds, at most 60).
    pub wait: Duration,
    /// Entries per request (default 1,000).
    pub batch: usize,
    /// Connection timeout, and how much longer than `wait` an answer may
    /// take (default 5 s).
    pub timeout: Duration,
    /// Waits between attempts after a failure.
    pub backoff: Backoff,
    /// How often expired ids are dropped (default 60 s).
    pub purge_every: Duration,
}

impl fmt::Debug for HttpFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFollower")
            .field("issuer", &redact_url(&self.issuer))
            .field("credential", &"***")
            .field("wait", &self.wait)
            .field("batch", &self.batch)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("purge_every", &self.purge_every)
            .finish()
    }
}

impl HttpFollower {
    /// Defaults for `issuer` and `credential`: 1 s long polls, pages of
    /// 1,000, 5 s timeout, backoff from 50 ms to 2 s, purge every minute.
    pub fn new(issuer: impl Into<String>, credential: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            credential: credential.into(),
            wait: Duration::from_secs(1),
            batch: 1000,
            timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            purge_every: Duration::from_secs(60),
        }
    }

    /// Starts following into `view`, in a task on the current tokio runtime.
    pub fn spawn(self, view: Arc<RevocationView>) -> Result<FollowerHandle, FollowError> {
        let base = self.issuer.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(FollowError::IssuerUrl(redact_url(base)));
        }
        let wait_secs = self.wait.as_secs_f64().ceil().clamp(1.0, 60.0) as u64;
        let client = reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .timeout(Duration::from_secs(wait_secs) + self.timeout)
            .build()
            .map_err(|e| FollowError::Http(e.to_string()))?;
        let run = Run {
            url: format!("{base}/v1/revocations"),
            wait_secs,
            batch: self.batch.clamp(1, 10_000),
            client,
            view: view.clone(),
            after: None,
            last_purge: Instant::now(),
            config: self,
        };
        FollowerHandle::spawn(view, run.run())
    }
}

/// The feed's answer.
#[derive(Deserialize)]
struct Page {
    entries: Vec<serde_json::Value>,
    next: Option<String>,
}

/// One entry of the feed.
#[derive(Deserialize)]
struct FeedEntry {
    cursor: String,
    revocation: Revocation,
}

struct Run {
    config: HttpFollower,
    url: String,
    wait_secs: u64,
    batch: usize,
    client: reqwest::Client,
    view: Arc<RevocationView>,
    /// The cursor after the last entry applied (or skipped as malformed).
    after: Option<String>,
    last_purge: Instant,
}

impl Run {
    async fn run(mut self) {
        let mut retry = Retry::new(self.config.backoff);
        let issuer = redact_url(&self.url);
        loop {
            let sent = Instant::now();
            match self.poll().await {
                Ok(full) => {
                    if !full {
                        self.view.confirm_current_at(sent);
                    }
                    let failures = retry.succeed();
                    if failures > 0 {
                        tracing::info!(feed = %issuer, failures, "revocation follower is back on the issuer's feed");
                    }
                    self.purge_if_due();
                }
                Err(problem) => {
                    self.view.note_reconnect();
                    let wait = retry.fail();
                    if retry.worth_warning() {
                        tracing::warn!(
                            feed = %issuer,
                            failures = retry.failures,
                            retry_in_ms = wait.as_millis() as u64,
                            error = %problem,
                            "revocation follower cannot read the issuer's feed; the view goes stale until it can"
                        );
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One long poll; applies what came back. `Ok(true)` when the page was
    /// full (more may be waiting, so the view is not confirmed yet).
    async fn poll(&mut self) -> Result<bool, String> {
        let mut query = vec![
            ("wait", self.wait_secs.to_string()),
            ("limit", self.batch.to_string()),
        ];
        if let Some(after) = &self.after {
            query.push(("after", after.clone()));
        }
        let response = self
            .client
            .get(&self.url)
            .query(&query)
            .bearer_auth(&self.config.credential)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(format!("the issuer answered {} {code}", status.as_u16()));
        }
        let page: Page = serde_json::from_slice(&body)
            .map_err(|e| format!("unexpected feed answer: {}", json_problem(&e)))?;
        let full = page.entries.len() >= self.batch;
        let mut entries: Vec<Entry> = Vec::with_capacity(page.entries.len());
        let mut last_cursor = None;
        for value in page.entries {
            let cursor = value["cursor"].as_str().map(str::to_owned);
            match serde_json::from_value::<FeedEntry>(value)
                .map_err(|e| json_problem(&e))
                .and_then(|e| Ok((e.cursor, entry_of(&e.revocation)?)))
            {
                Ok((cursor, entry)) => {
                    entries.push(entry);
                    last_cursor = Some(cursor);
                }
                Err(problem) => {
                    tracing::warn!(
                        entry = cursor.as_deref().unwrap_or("?"),
                        problem = %problem,
                        "skipping a malformed revocation entry"
                    );
                    if cursor.is_some() {
                        last_cursor = cursor;
                    }
                }
            }
        }
        // Where to resume: the issuer's `next`, else the last cursor seen.
        let next = page.next.or(last_cursor);
        if !entries.is_empty() || next != self.after {
            let Some(next) = next else {
                return Err("the feed answered entries without a cursor".to_owned());
            };
            self.view
                .apply(
                    entries.iter().map(|(id, exp)| (id.as_slice(), *exp)),
                    Some(next.clone()),
                )
                .map_err(|e| format!("the revocation view refused entries: {e}"))?;
            self.after = Some(next);
        }
        Ok(full)
    }

    fn purge_if_due(&mut self) {
        if self.last_purge.elapsed() >= self.config.purge_every {
            self.last_purge = Instant::now();
            let purged = self.view.purge_expired(wall_clock());
            if purged > 0 {
                tracing::debug!(purged, "dropped revocations of expired tokens");
            }
        }
    }
}
