//! [`Verifier`]: one call per request decides whether a presented token
//! allows an operation on a resource, offline, with public keys only.
//!
//! Order of a check, refusing at the first failure, each step once:
//! 1. revocations stale (503) unless the operator allowed stale operation;
//! 2. size of the presented token, before decoding;
//! 3. the token: root key id, signatures, holder chain (skipped when the
//!    same token bytes were verified before, see "Caches");
//! 4. revocation of any block, against the follower's view;
//! 5. for [`Verifier::authenticate`] (no operation yet): expiry and
//!    audience, read from the claims;
//! 6. the DPoP proof (RFC 9449) when one is presented: header, signature,
//!    `htm`, `htu`, `iat` within the skew, `ath`; then the holder: a bound
//!    token's final holder must be the proof's key;
//! 7. expiry, audience and scope: the token's own checks in Datalog with
//!    the request's facts, under explicit run limits (on tokio's blocking
//!    pool when the token has blocks after the authority block);
//! 8. only then, for an allowed request, the proof's `jti` is spent in the
//!    replay cache, counted against the holder's key (or, for a bearer
//!    token, against the token), so that refused requests take no room and
//!    one caller cannot crowd out the others.

//!
//! What the verifier remembers between calls is in `cache.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use biscuit_auth::builder::Fact;
use chrono::{DateTime, Utc};

use super::builder::Clock;
use super::cache::{Entry, MemoKey, MEMO_PER_TOKEN};
use super::keys::KeySource;
use super::reason::{Reason, Rejection};
use super::request::{Authenticated, CheckRequest, Grant, Presentation};
use super::view::RevocationView;
use crate::jose::{self, DpopRules};
use crate::replay::{dpop_replay_key, ReplayGuard};
use crate::token::{self, Audience, Denial, KeySet, Limits, Verified};

/// Most bytes of blocks after the authority block for a token evaluated in
/// place, on the calling task. The gate (`token::gate`) bounds a block's
/// Datalog by its size: the most expensive shapes it lets through cost about
/// 0.22 µs per byte here (docs/performance.md, "Adversarial tokens"), so
/// this many bytes cost at most about a quarter of a millisecond; larger
/// blocks go to the blocking pool.
pub const IN_PLACE_ADDED_BYTES: usize = 1024;

/// A checked DPoP proof whose `jti` is not spent yet.
#[derive(Debug)]
struct PendingProof {
    /// Hash of the key's thumbprint and the `jti`.
    replay_key: [u8; 32],
    /// Whose share of the replay cache it counts against.
    owner: String,
    /// Until when it must be remembered.
    until: DateTime<Utc>,
}

/// A presentation checked up to the scope decision, its proof not spent.
#[derive(Debug)]
struct Prepared {
    entry: Arc<Entry>,
    holder_proven: bool,
    proof: Option<PendingProof>,
}

/// The earliest expiry of the whole chain, read from the decoded blocks
/// without Datalog (the authority's, or an earlier one an attenuation added).
fn expires_at(verified: &Verified) -> DateTime<Utc> {
    verified.expires_at()
}

pub(super) struct Inner {
    pub(super) service: Audience,
    pub(super) keys: RwLock<Arc<KeySet>>,
    pub(super) source: KeySource,
    pub(super) last_fetch: Mutex<Option<Instant>>,
    pub(super) refetch_interval: Duration,
    pub(super) view: Option<Arc<RevocationView>>,
    /// The follower the verifier started, stopped when the last clone of
    /// the verifier is dropped.
    pub(super) _follower: Option<super::FollowerHandle>,
    pub(super) max_staleness: Duration,
    pub(super) allow_stale: bool,
    pub(super) skew: Duration,
    pub(super) limits: Limits,
    pub(super) replay: Arc<dyn ReplayGuard>,
    pub(super) cache: RwLock<HashMap<[u8; 32], Arc<Entry>>>,
    pub(super) cache_capacity: usize,
    pub(super) clock: Clock,
    pub(super) http: reqwest::Client,
    pub(super) audit: Option<Arc<super::AuditSink>>,
}

/// Checks presented tokens; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Verifier {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("service", &self.inner.service.as_str())
            .field("follows_revocations", &self.inner.view.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// This server's canonical URI.
    pub fn service(&self) -> &str {
        self.inner.service.as_str()
    }

    /// The revocation view this verifier reads, if it follows revocations.
    pub fn revocations(&self) -> Option<&Arc<RevocationView>> {
        self.inner.view.as_ref()
    }

    /// Waits until the revocation view has been confirmed current (the
    /// follower's first read), at most `timeout`; whether it was. A
    /// verifier that does not follow revocations is always ready.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let Some(view) = &self.inner.view else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        loop {
            if view
                .staleness()
                .is_some_and(|lag| lag <= self.inner.max_staleness)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The limits in force (a layer checks header sizes against them).
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The current time, from the verifier's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Decides whether `presentation` allows `request`, now.
    ///
    /// The DPoP proof's `jti` is spent only when the request is allowed.
    pub async fn check(
        &self,
        presentation: &Presentation<'_>,
        request: &CheckRequest,
    ) -> Result<Grant, Rejection> {
        let prepared = match self.prepare(presentation, false).await {
            Ok(p) => p,
            Err((rejection, entry)) => {
                self.record(entry.as_deref(), Some(request), Err(&rejection));
                return Err(rejection);
            }
        };
        let outcome = match self
            .decide(&prepared.entry, prepared.holder_proven, request)
            .await
        {
            Ok(grant) => self.spend(prepared.proof.as_ref()).map(|()| grant),
            Err(rejection) => Err(rejection),
        };
        self.record(Some(&prepared.entry), Some(request), outcome.as_ref());
        outcome
    }

    /// Sends the decision to the audit sink, if there is one. `request` is
    /// `None` for a refusal of [`Self::authenticate`] (no operation yet).
    fn record(
        &self,
        entry: Option<&Entry>,
        request: Option<&CheckRequest>,
        outcome: Result<&Grant, &Rejection>,
    ) {
        let Some(sink) = &self.inner.audit else {
            return;
        };
        // Person and earlier actors from the authority block; a refusal
        // of a token that could be read names them too.
        let (on_behalf, agents) = match (outcome, entry) {
            (Ok(g), _) => (g.on_behalf.as_ref(), g.chain.clone()),
            (Err(_), Some(e)) => {
                let chain = e.verified.chain();
                (chain.claims.on_behalf.as_ref(), chain.agents())
            }
            (Err(_), None) => (None, Vec::new()),
        };
        let custody = token::Custody {
            on_behalf,
            agents: &agents,
        };
        let chain: Vec<String> = custody.actors().map(|a| a.as_str().to_owned()).collect();
        let person = custody.person().cloned();
        sink.record(super::DecisionAudit {
            at: self.now(),
            agent: chain.last().cloned(),
            token_id: match (outcome, entry) {
                (Ok(g), _) => Some(g.token_id.clone()),
                (Err(_), Some(e)) => Some(e.verified.chain().claims.token_id.clone()),
                (Err(_), None) => None,
            },
            action: request
                .map(|r| r.operation.as_str().to_owned())
                .unwrap_or_default(),
            resource: request
                .map(|r| r.resource.as_str().to_owned())
                .unwrap_or_default(),
            granted: outcome.is_ok(),
            reason: outcome.err().map(|r| r.reason.as_str().to_owned()),
            chain,
            person,
            remote_addr: None,
        });
    }

    /// Everything but the scope decision: staleness, size, signatures and
    /// chain, revocation, expiry, audience, the DPoP proof and the holder's
    /// proof; then the proof's `jti` is spent. A refusal is recorded in the
    /// audit sink (without an operation).
    ///
    /// Expiry is the authority block's here; an earlier expiry added by an
    /// attenuation block, like every other check a block adds, is enforced
    /// by [`Self::authorize`].
    pub async fn authenticate(
        &self,
        presentation: &Presentation<'_>,
    ) -> Result<Authenticated, Rejection> {
        let prepared = match self.prepare(presentation, true).await {
            Ok(p) => p,
            Err((rejection, entry)) => {
                self.record(entry.as_deref(), None, Err(&rejection));
                return Err(rejection);
            }
        };
        match self.spend(prepared.proof.as_ref()) {
            Ok(()) => Ok(Authenticated {
                entry: prepared.entry,
                holder_proven: prepared.holder_proven,
            }),
            Err(rejection) => {
                self.record(Some(&prepared.entry), None, Err(&rejection));
                Err(rejection)
            }
        }
    }

    /// The scope decision for an authenticated presentation. Staleness and
    /// revocation are looked at again (the view may have moved since), and
    /// the token's own checks run in full (expiry included).
    pub async fn authorize(
        &self,
        authenticated: &Authenticated,
        request: &CheckRequest,
    ) -> Result<Grant, Rejection> {
        let outcome = match self
            .fresh()
            .and_then(|()| self.not_revoked(&authenticated.entry))
        {
            Ok(()) => {
                self.decide(&authenticated.entry, authenticated.holder_proven, request)
                    .await
            }
            Err(rejection) => Err(rejection),
        };
        self.record(Some(&authenticated.entry), Some(request), outcome.as_ref());
        outcome
    }

    /// The checks of a presentation up to the scope decision, in order:
    /// staleness, the token (size, signatures, chain), revocation, then
    /// when `deferred` the expiry and audience read from the claims, the
    /// DPoP proof and the holder. Nothing is spent.
    async fn prepare(
        &self,
        presentation: &Presentation<'_>,
        deferred: bool,
    ) -> Result<Prepared, (Rejection, Option<Arc<Entry>>)> {
        self.fresh().map_err(|r| (r, None))?;
        let token = presentation.token.trim();
        if token.is_empty() {
            return Err((
                Rejection::new(Reason::MissingToken, "no token presented"),
                None,
            ));
        }
        let entry = match self.entry(token) {
            Ok(e) => e,
            Err(d) if d.reason == Reason::UnknownKeyId && self.refetch().await => {
                self.entry(token).map_err(|d| (d, None))?
            }
            Err(d) => return Err((d, None)),
        };
        match self.check_presentation(&entry, presentation, token, deferred) {
            Ok((holder_proven, proof)) => Ok(Prepared {
                entry,
                holder_proven,
                proof,
            }),
            Err(rejection) => Err((rejection, Some(entry))),
        }
    }

    /// [`Self::prepare`] once the token is verified: revocation, what does
    /// not depend on the operation (when `deferred`), the DPoP proof and
    /// the holder. Whether the holder was proven, and the unspent proof.
    fn check_presentation(
        &self,
        entry: &Entry,
        presentation: &Presentation<'_>,
        token: &str,
        deferred: bool,
    ) -> Result<(bool, Option<PendingProof>), Rejection> {
        self.not_revoked(entry)?;
        let now = self.now();
        if deferred {
            self.independent_of_the_operation(&entry.verified, now)?;
        }
        let Some(proof) = presentation.dpop else {
            return Ok((entry.verified.holder_proven_by(None)?, None));
        };
        let window = i64::try_from(self.inner.skew.as_secs()).unwrap_or(i64::MAX);
        let proof = jose::verify_dpop(
            proof,
            &DpopRules {
                method: presentation.method,
                url: presentation.url,
                access_token: Some(token),
                now,
                window_secs: window,
            },
        )
        .map_err(|e| Rejection::new(Reason::InvalidDpop, e.to_string()))?;
        let key = proof.key.to_bytes();
        let holder_proven = entry.verified.holder_proven_by(Some(&key))?;
        let replay_key = dpop_replay_key(&proof.jkt, &proof.jti);
        let owner = if holder_proven {
            proof.jkt
        } else {
            // A bearer token: the proof's key is anyone's, the token is not.
            format!("token:{}", entry.verified.chain().claims.token_id)
        };
        // Fail closed: a proof whose window end is out of range is refused
        // (unreachable after `verify_dpop`'s window check).
        let until = proof
            .iat
            .checked_add(window)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| Rejection::new(Reason::InvalidDpop, "iat out of range"))?;
        Ok((
            holder_proven,
            Some(PendingProof {
                replay_key,
                owner,
                until,
            }),
        ))
    }

    /// What a deferred presentation must pass before any handler runs and
    /// that Datalog would otherwise only check with the operation: expiry
    /// and audience, read from the claims.
    fn independent_of_the_operation(
        &self,
        verified: &Verified,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let expires_at = expires_at(verified);
        if now > expires_at {
            return Err(Rejection::new(
                Reason::Expired,
                format!("the token expired at {}", expires_at.to_rfc3339()),
            ));
        }
        match &verified.chain().claims.audience {
            Some(audience) if audience != self.inner.service.as_str() => Err(Rejection::new(
                Reason::WrongAudience,
                format!(
                    "the token is for {audience:?}, this is {:?}",
                    self.inner.service.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Spends a checked proof's `jti`.
    fn spend(&self, proof: Option<&PendingProof>) -> Result<(), Rejection> {
        let Some(proof) = proof else {
            return Ok(());
        };
        let now = self.now();
        match self
            .inner
            .replay
            .insert_once_for(&proof.owner, proof.replay_key, proof.until, now)
        {
            Some(true) => Ok(()),
            Some(false) => Err(Rejection::new(
                Reason::ReplayedDpop,
                "this DPoP proof (jti) was already used",
            )),
            None => Err(Rejection::new(
                Reason::Overloaded,
                "the DPoP replay cache is full",
            )),
        }
    }

    /// The scope decision: the token's own checks in Datalog, remembered
    /// per token for the exact question. Staleness, revocation and the
    /// holder's proof are the caller's.
    async fn decide(
        &self,
        entry: &Arc<Entry>,
        holder_proven: bool,
        request: &CheckRequest,
    ) -> Result<Grant, Rejection> {
        let now = self.now();
        let req = token::Request {
            operation: request.operation.clone(),
            resource: request.resource.clone(),
            service: Some(self.inner.service.clone()),
            now,
            proven_key: None,
            amount: request.amount.clone(),
        };
        let outcome = if request.facts.is_empty() {
            let key = MemoKey {
                operation: request.operation.as_str().to_owned(),
                resource: request.resource.as_str().to_owned(),
                holder_proven,
                amount: request.amount.clone(),
                second: now.timestamp() + i64::from(now.timestamp_subsec_nanos() > 0),
            };
            let remembered = entry.memo.lock().ok().and_then(|memo| {
                memo.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, outcome)| outcome.clone())
            });
            match remembered {
                Some(outcome) => outcome,
                None => {
                    let outcome = self.evaluate(entry, req, holder_proven, Vec::new()).await;
                    if let Ok(mut memo) = entry.memo.lock() {
                        if memo.len() >= MEMO_PER_TOKEN {
                            let _evicted = memo.remove(0);
                        }
                        memo.push((key, outcome.clone()));
                    }
                    outcome
                }
            }
        } else {
            self.evaluate(entry, req, holder_proven, request.facts.clone())
                .await
        };
        let grant = outcome?;
        let agent = grant
            .chain
            .first()
            .cloned()
            .ok_or_else(|| Rejection::new(Reason::Malformed, "the token names no agent"))?;
        Ok(Grant {
            agent,
            on_behalf: grant.on_behalf,
            chain: grant.chain,
            token_id: grant.token_id,
            expires_at: grant.expires_at,
            holder_proven,
            actions: grant.actions,
            approval: entry.verified.chain().claims.approval.clone(),
            budgets: grant.budgets,
        })
    }

    /// Runs the token's Datalog. A token whose blocks after the authority
    /// block (the checks someone other than the issuer wrote) hold more
    /// than [`IN_PLACE_ADDED_BYTES`] is evaluated on tokio's blocking pool,
    /// off the runtime's worker threads; the issuer's few checks and the
    /// small blocks of an ordinary attenuation or delegation are evaluated
    /// in place, saving the hop between threads (tens of microseconds).
    async fn evaluate(
        &self,
        entry: &Arc<Entry>,
        req: token::Request,
        holder_proven: bool,
        facts: Vec<Fact>,
    ) -> Result<token::Authorized, Denial> {
        let limits = &self.inner.limits;
        let in_place = entry.verified.added_bytes() <= IN_PLACE_ADDED_BYTES
            || tokio::runtime::Handle::try_current().is_err();
        if in_place {
            return entry
                .verified
                .decide_proven(&req, holder_proven, &facts, limits);
        }
        let (entry, limits) = (Arc::clone(entry), limits.clone());
        tokio::task::spawn_blocking(move || {
            entry
                .verified
                .decide_proven(&req, holder_proven, &facts, &limits)
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the token's evaluation did not complete");
            Err(Denial::new(
                Reason::LimitsExceeded,
                "the token's evaluation did not complete",
            ))
        })
    }

    fn fresh(&self) -> Result<(), Rejection> {
        let inner = &self.inner;
        let Some(view) = &inner.view else {
            return Ok(());
        };
        if inner.allow_stale {
            return Ok(());
        }
        match view.staleness() {
            Some(lag) if lag <= inner.max_staleness => Ok(()),
            Some(lag) => Err(Rejection::new(
                Reason::Stale,
                format!(
                    "revocations were last confirmed {} ms ago (bound {} ms)",
                    lag.as_millis(),
                    inner.max_staleness.as_millis()
                ),
            )),
            None => Err(Rejection::new(
                Reason::Stale,
                "revocations have not been loaded yet",
            )),
        }
    }

    fn not_revoked(&self, entry: &Entry) -> Result<(), Rejection> {
        match &self.inner.view {
            Some(view) => Ok(entry.verified.check_revocation(|id| view.contains(id))?),
            None => Ok(()),
        }
    }
}
