//! Following the issuer's revocation feed over HTTP.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::{
    entry_of, follow, json_problem, redact_url, Backoff, Entry, FeedSource, FollowError,
    FollowerHandle, Loop, Page,
};
use crate::records::{FeedEntry, FeedPage};
use crate::verify::view::RevocationView;

/// Follows the issuer's feed, `GET {issuer}/v1/revocations?after=&wait=&limit=`,
/// with a bearer credential: a feed token (`tessera admin token --feed`,
/// which can read the feed and nothing else) or an admin token.
///
/// Each request long-polls for up to `wait` (whole seconds, 1 to 60); the
/// issuer answers as soon as an entry exists. Staleness peaks at about
/// twice `wait` plus a round trip while the issuer answers.
///
/// Feed tokens expire (1 h by default). To keep following without a
/// restart, give the credential as a file ([`Self::with_credential_file`])
/// and have a timer write a fresh token into it before the current one
/// expires (`tessera admin token --feed --ttl 1h … > file.tmp && mv
/// file.tmp file`). The follower reads the file again when it changes, in
/// the last 30 s before the current token's expiry (read from its claims),
/// after the issuer refuses the credential (401), and at least once a
/// minute.
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
    /// The bearer credential (never logged); unused when
    /// `credential_file` is set.
    pub credential: String,
    /// A file holding the bearer credential, read when the follower starts
    /// (a missing or empty file is an error then) and again as described
    /// above.
    pub credential_file: Option<PathBuf>,
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
            .field("credential_file", &self.credential_file)
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
            credential_file: None,
            wait: Duration::from_secs(1),
            batch: 1000,
            timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            purge_every: Duration::from_secs(60),
        }
    }

    /// The defaults of [`Self::new`], with the credential read from `path`
    /// (and read again when it is renewed).
    pub fn with_credential_file(issuer: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            credential_file: Some(path.into()),
            ..Self::new(issuer, String::new())
        }
    }

    /// Starts following into `view`, in a task on the current tokio runtime.
    pub fn spawn(self, view: Arc<RevocationView>) -> Result<FollowerHandle, FollowError> {
        let base = self.issuer.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(FollowError::IssuerUrl(redact_url(base)));
        }
        let credential = match &self.credential_file {
            Some(path) => Credential::from_file(path).map_err(FollowError::Credential)?,
            None => Credential::fixed(self.credential.clone()),
        };
        let wait_secs = self.wait.as_secs_f64().ceil().clamp(1.0, 60.0) as u64;
        let client = reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .timeout(Duration::from_secs(wait_secs) + self.timeout)
            .build()
            .map_err(|e| FollowError::Http(e.to_string()))?;
        let source = Source {
            url: format!("{base}/v1/revocations"),
            wait_secs,
            batch: self.batch.clamp(1, 10_000),
            client,
            credential,
        };
        let config = Loop {
            backoff: self.backoff,
            purge_every: self.purge_every,
        };
        FollowerHandle::spawn(view.clone(), follow(source, view, config))
    }
}

/// A feed page as the follower applies it.
#[derive(Debug)]
pub(crate) struct ReadPage {
    /// The well-formed entries, in order.
    pub(crate) entries: Vec<Entry>,
    /// How many entries the page held, malformed ones included.
    pub(crate) count: usize,
    /// Where to resume: the issuer's `next`, else the last cursor seen
    /// (malformed entries with a cursor are skipped past).
    pub(crate) next: Option<String>,
}

/// Parses the issuer's feed answer. Pure, so that it can be fuzzed: a
/// malformed entry is skipped (and logged), a malformed page is an error.
pub(crate) fn read_page(body: &[u8]) -> Result<ReadPage, String> {
    let page: FeedPage<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| format!("unexpected feed answer: {}", json_problem(&e)))?;
    let count = page.entries.len();
    let mut entries: Vec<Entry> = Vec::with_capacity(count);
    let mut last_cursor = None;
    for value in page.entries {
        let cursor = value["cursor"].as_str().map(str::to_owned);
        match serde_json::from_value::<FeedEntry>(value)
            .map_err(|e| json_problem(&e))
            .and_then(|e| Ok((e.cursor.to_string(), entry_of(&e.revocation)?)))
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
    Ok(ReadPage {
        entries,
        count,
        next: page.next.map(|c| c.to_string()).or(last_cursor),
    })
}

/// The issuer's HTTP feed as a [`FeedSource`].
struct Source {
    url: String,
    wait_secs: u64,
    batch: usize,
    client: reqwest::Client,
    credential: Credential,
}

/// How long before the credential's expiry the file is read on every poll.
const RENEW_MARGIN: Duration = Duration::from_secs(30);
/// The longest the file goes unread.
const REREAD_EVERY: Duration = Duration::from_secs(60);

/// What identifies a version of the credential file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        }
    }
}

/// The bearer credential, fixed or kept current from a file.
struct Credential {
    token: String,
    /// The file and the version of it last read.
    file: Option<(PathBuf, Stamp)>,
    /// The token's expiry, from its (unverified) claims, for scheduling.
    expires_at: Option<DateTime<Utc>>,
    last_read: Instant,
    /// Read the file on the next poll whatever its stamp (after a 401).
    reread: bool,
    /// An expired credential was reported (once until it is renewed).
    warned: bool,
    /// The last problem reading the file, reported once until it changes.
    problem: Option<String>,
}

/// The expiry a token names, read without verifying it: only to schedule
/// reading the file again, never to decide anything.
fn expiry_of(token: &str) -> Option<DateTime<Utc>> {
    crate::token::inspect(token, None, &crate::token::Limits::default())
        .ok()
        .map(|i| i.expires_at)
}

/// The trimmed content of a credential file and its stamp.
fn read_credential(path: &Path) -> Result<(String, Stamp), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.len() > 64 * 1024 {
        return Err(format!("{shown}: larger than 64 KiB"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok((token.to_owned(), Stamp::of(&meta)))
}

impl Credential {
    fn fixed(token: String) -> Self {
        Self {
            expires_at: expiry_of(&token),
            token,
            file: None,
            last_read: Instant::now(),
            reread: false,
            warned: false,
            problem: None,
        }
    }

    fn from_file(path: &Path) -> Result<Self, String> {
        let (token, stamp) = read_credential(path)?;
        Ok(Self {
            file: Some((path.to_owned(), stamp)),
            ..Self::fixed(token)
        })
    }

    /// Reads the file again if it changed, if the token is close to its
    /// expiry, after a refusal, or when it has not been read for a while.
    /// A file that cannot be read, or is empty (being rewritten), leaves
    /// the current credential in place.
    async fn refresh(&mut self) {
        let Some((path, stamp)) = &self.file else {
            return;
        };
        let path = path.clone();
        let changed = match tokio::fs::metadata(&path).await {
            Ok(meta) => Stamp::of(&meta) != *stamp,
            Err(_) => true,
        };
        let now = super::wall_clock();
        let closing = self.expires_at.is_some_and(|t| {
            chrono::Duration::from_std(RENEW_MARGIN)
                .ok()
                .and_then(|m| now.checked_add_signed(m))
                .is_none_or(|horizon| horizon >= t)
        });
        if !(changed || closing || self.reread || self.last_read.elapsed() >= REREAD_EVERY) {
            return;
        }
        self.reread = false;
        self.last_read = Instant::now();
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_credential(&path))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        };
        match read {
            Ok((token, stamp)) => {
                if token != self.token {
                    self.expires_at = expiry_of(&token);
                    self.token = token;
                    self.warned = false;
                    tracing::info!(
                        file = %path.display(),
                        expires_at = ?self.expires_at,
                        "revocation follower renewed its feed credential"
                    );
                }
                self.file = Some((path.clone(), stamp));
                self.problem = None;
            }
            Err(problem) => {
                if self.problem.as_ref() != Some(&problem) {
                    tracing::warn!(%problem, "cannot read the feed credential again; keeping the current one");
                    self.problem = Some(problem);
                }
            }
        }
        if !self.warned && self.expires_at.is_some_and(|t| now > t) {
            self.warned = true;
            tracing::warn!(
                file = %path.display(),
                "the feed credential has expired and the file holds no newer one: write a fresh \
                 token (`tessera admin token --feed`); the view goes stale until then"
            );
        }
    }
}

impl FeedSource for Source {
    fn describe(&self) -> String {
        redact_url(&self.url)
    }

    /// Reads the credential file again if due, then one long poll.
    async fn next_page(&mut self, after: Option<&str>) -> Result<Page, String> {
        self.credential.refresh().await;
        let mut query = vec![
            ("wait", self.wait_secs.to_string()),
            ("limit", self.batch.to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let response = self
            .client
            .get(&self.url)
            .query(&query)
            .bearer_auth(&self.credential.token)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            self.credential.reread = true;
        }
        if !status.is_success() {
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(format!("the issuer answered {} {code}", status.as_u16()));
        }
        let page = read_page(&body)?;
        Ok(Page {
            full: page.count >= self.batch,
            entries: page.entries,
            next: page.next,
        })
    }
}
