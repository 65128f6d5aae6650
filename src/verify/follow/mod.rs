//! Revocation followers: keep a [`RevocationView`] current from the
//! issuer's Redis stream ([`RedisFollower`]) or from its HTTP feed
//! ([`HttpFollower`], for tool servers that cannot reach Redis).
//!
//! Both follow the same contract:
//!
//! - They read the whole feed from its start once, then only what comes
//!   after the last entry applied, in order. A lost connection resumes from
//!   that entry: never from the start again, never skipping one.
//! - After each successful read that reached the end of the feed (even an
//!   empty one) they confirm the view current as of the instant the read was
//!   *sent*, so [`RevocationView::staleness`] never under-reports. While the
//!   source is reachable, staleness stays below about twice the long-poll
//!   time plus a round trip (2 s with the defaults); give the verifier a
//!   bound above that. While it is not, staleness grows and the verifier
//!   refuses (fail closed).
//! - On any error they count a reconnection ([`RevocationView::note_reconnect`]),
//!   wait with exponential backoff and jitter ([`Backoff`]) and try again,
//!   forever, until the [`FollowerHandle`] is shut down or dropped.
//! - A malformed entry is skipped with a warning (its position and what was
//!   wrong, never its content) and the follower moves past it.
//! - About once a minute they drop ids whose token has expired, by the wall
//!   clock (an expired token is refused by its own expiry check).

pub(crate) mod http;
mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng as _;
use tokio::task::JoinHandle;

use super::revocations::PREFIX_LEN;
use super::view::{FollowerStats, RevocationView};
use crate::records::Revocation;

pub use http::HttpFollower;
pub use redis::RedisFollower;

/// How long a follower waits before reconnecting: doubles from `initial`
/// up to `max` after each consecutive failure, with jitter (each wait is
/// drawn between half and all of the current step), and starts over after
/// a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 50 ms, doubling up to 2 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

/// Consecutive failures and the next step of a [`Backoff`].
#[derive(Debug)]
pub(crate) struct Retry {
    backoff: Backoff,
    step: Duration,
    /// Failures since the last success.
    pub(crate) failures: u32,
}

impl Retry {
    pub(crate) fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            step: backoff.initial,
            failures: 0,
        }
    }

    /// Counts a failure and returns how long to wait before the next try.
    pub(crate) fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let step = self.step.min(self.backoff.max);
        self.step = step.saturating_mul(2).min(self.backoff.max);
        let half = step / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::thread_rng().gen_range(0..=jitter_nanos))
    }

    /// Forgets the failures; returns how many there were.
    pub(crate) fn succeed(&mut self) -> u32 {
        self.step = self.backoff.initial;
        std::mem::take(&mut self.failures)
    }

    /// Whether this failure deserves a warning: the first of an outage and
    /// then one in 32, so that a long outage does not flood the log.
    pub(crate) fn worth_warning(&self) -> bool {
        self.failures <= 1 || self.failures.is_multiple_of(32)
    }
}

/// Why a follower could not start.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Followers run as tokio tasks: start them inside a runtime.
    #[error("a revocation follower must be started inside a tokio runtime")]
    NoRuntime,
    /// The Redis URL could not be parsed (the message never holds the password).
    #[error("invalid Redis URL: {0}")]
    RedisUrl(String),
    /// The key prefix would change the keys' Redis Cluster hash tags.
    #[error(transparent)]
    KeyPrefix(#[from] crate::records::redis::LayoutError),
    /// The issuer URL is not an `http(s)://` URL.
    #[error("invalid issuer URL: {0}")]
    IssuerUrl(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
    /// The feed credential file could not be read, or is empty.
    #[error("feed credential: {0}")]
    Credential(String),
}

/// A running follower. [`shutdown`](Self::shutdown) or dropping it stops the
/// task; the view keeps what it holds, and goes stale from then on.
#[derive(Debug)]
pub struct FollowerHandle {
    view: Arc<RevocationView>,
    /// `None` only once shut down.
    task: Option<JoinHandle<()>>,
}

impl FollowerHandle {
    pub(crate) fn spawn<F>(view: Arc<RevocationView>, run: F) -> Result<Self, FollowError>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FollowError::NoRuntime)?;
        Ok(Self {
            view,
            task: Some(runtime.spawn(run)),
        })
    }

    /// The view this follower writes.
    pub fn view(&self) -> &Arc<RevocationView> {
        &self.view
    }

    /// The follower's counters.
    pub fn stats(&self) -> FollowerStats {
        self.view.stats()
    }

    /// Whether the task is still running (it only stops when asked to).
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the task and waits until it has stopped. The follower holds
    /// nothing that needs flushing: the view is updated as entries arrive.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for FollowerHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What a source read: the well-formed entries, where the feed resumes
/// after them, and whether more may be waiting.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// The well-formed entries, in order (malformed ones were skipped).
    pub(crate) entries: Vec<Entry>,
    /// The position after this page: the last entry read (well-formed or
    /// not), or the position asked for when there was none.
    pub(crate) next: Option<String>,
    /// The page was full: more may be waiting, the view is not current yet.
    pub(crate) full: bool,
}

/// Where a follower reads the revocation feed: the issuer's Redis stream
/// or its HTTP feed. [`follow`] runs the loop over it.
pub(crate) trait FeedSource: Send {
    /// Reads the entries after `after` (from the start when `None`): at
    /// once if there are some, else waiting up to the source's long-poll
    /// time. An error means the source is unreachable or answered
    /// something unusable; the next call starts over (reconnecting if the
    /// source holds a connection) from the same `after`.
    fn next_page(
        &mut self,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page, String>> + Send;

    /// What the source is, for logs (never a credential).
    fn describe(&self) -> String;
}

/// How a follower's loop is set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loop {
    /// Waits between attempts after a failure.
    pub(crate) backoff: Backoff,
    /// How often expired ids are dropped.
    pub(crate) purge_every: Duration,
}

/// The follow loop, written once for every source: read a page, apply it,
/// confirm the view when the page reached the end of the feed, purge
/// expired ids when due, and on failure count a reconnection and back off.
/// Runs until its task is aborted.
pub(crate) async fn follow<S: FeedSource>(mut source: S, view: Arc<RevocationView>, config: Loop) {
    let mut retry = Retry::new(config.backoff);
    let mut after: Option<String> = None;
    let mut last_purge = Instant::now();
    let source_name = source.describe();
    loop {
        let sent = Instant::now();
        let applied = match source.next_page(after.as_deref()).await {
            Ok(page) => apply(&view, &mut after, page),
            Err(problem) => Err(problem),
        };
        match applied {
            Ok(full) => {
                if !full {
                    view.confirm_current_at(sent);
                }
                let failures = retry.succeed();
                if failures > 0 {
                    tracing::info!(
                        source = %source_name,
                        failures,
                        position = after.as_deref().unwrap_or("start"),
                        "revocation follower is back on its source"
                    );
                }
                if last_purge.elapsed() >= config.purge_every {
                    last_purge = Instant::now();
                    let purged = view.purge_expired(wall_clock());
                    if purged > 0 {
                        tracing::debug!(purged, "dropped revocations of expired tokens");
                    }
                }
            }
            Err(problem) => {
                view.note_reconnect();
                let wait = retry.fail();
                if retry.worth_warning() {
                    tracing::warn!(
                        source = %source_name,
                        failures = retry.failures,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %problem,
                        "revocation follower cannot read its source; the view goes stale until it can"
                    );
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Applies a page and moves `after` past it. Returns whether it was full.
fn apply(view: &RevocationView, after: &mut Option<String>, page: Page) -> Result<bool, String> {
    if !page.entries.is_empty() || page.next != *after {
        let Some(next) = page.next else {
            return Err("the feed answered entries without a cursor".to_owned());
        };
        view.apply(
            page.entries.iter().map(|(id, exp)| (id.as_slice(), *exp)),
            Some(next.clone()),
        )
        .map_err(|e| format!("the revocation view refused entries: {e}"))?;
        *after = Some(next);
    }
    Ok(page.full)
}

/// A feed entry the view can hold: the id's bytes and the token's expiry.
pub(crate) type Entry = (Vec<u8>, DateTime<Utc>);

/// Checks a revocation record from a feed.
pub(crate) fn entry_of(revocation: &Revocation) -> Result<Entry, String> {
    let id = hex::decode(&revocation.revocation_id)
        .map_err(|_| "revocation_id is not hex".to_owned())?;
    if id.len() < PREFIX_LEN {
        return Err(format!(
            "revocation_id has {} bytes, at least {PREFIX_LEN} expected",
            id.len()
        ));
    }
    Ok((id, revocation.expires_at))
}

/// What went wrong decoding JSON, without echoing the input.
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    format!(
        "invalid JSON ({:?} error at line {} column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// The wall clock, read only to purge expired ids (the view's freshness
/// runs on the monotonic clock).
#[allow(clippy::disallowed_methods)] // an I/O edge: the follower's one clock read
pub(crate) fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

/// A URL without its credentials, for logs.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_and_restarts_after_success() {
        let mut retry = Retry::new(Backoff::default());
        let waits: Vec<Duration> = (0..8).map(|_| retry.fail()).collect();
        let steps = [50, 100, 200, 400, 800, 1600, 2000, 2000];
        for (wait, step) in waits.iter().zip(steps) {
            let step = Duration::from_millis(step);
            assert!(*wait >= step / 2 && *wait <= step, "{wait:?} for {step:?}");
        }
        assert_eq!(retry.succeed(), 8);
        assert!(retry.fail() <= Duration::from_millis(50));
    }

    #[test]
    fn only_signature_sized_hex_ids_are_entries() {
        let mut r = Revocation {
            revocation_id: "ab".repeat(64),
            token_id: None,
            agent: None,
            reason: String::new(),
            revoked_at: DateTime::UNIX_EPOCH,
            expires_at: DateTime::UNIX_EPOCH,
        };
        assert_eq!(entry_of(&r).map(|e| e.0.len()), Ok(64));
        r.revocation_id = "abcd".into();
        assert!(entry_of(&r).is_err());
        r.revocation_id = "zz".repeat(64);
        assert!(entry_of(&r).is_err());
    }

    #[test]
    fn a_key_prefix_with_a_brace_is_refused_before_anything_starts() {
        let mut follower = RedisFollower::new("redis://127.0.0.1:1/");
        follower.key_prefix = "team{a}:".into();
        let started = follower.spawn(RevocationView::new());
        assert!(
            matches!(started, Err(FollowError::KeyPrefix(_))),
            "{started:?}"
        );
    }

    #[test]
    fn urls_lose_their_password_in_logs() {
        assert_eq!(
            redact_url("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }
}
