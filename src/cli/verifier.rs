//! `tessera token verify` with the Verifier: root keys from a JWKS file or
//! URL (or the issuer's), revocations followed from Redis or the issuer's
//! feed (or, when asked, only the --revoked ids or none), and possession
//! proven with a DPoP proof made from --holder-key.

use std::time::Duration;

use super::{
    now, offline_revocation_check, read_key_pair, read_keys, read_token, report_verdict, Failure,
    RevocationCheck, VerifyArgs,
};
use crate::jose::{self, DpopClaims};
use crate::token::Limits;
use crate::verify::{CheckRequest, KeySource, Presentation, RevocationView, Revocations, Verifier};

/// How long to wait for the follower's first read.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

fn key_source(args: &VerifyArgs) -> Result<KeySource, Failure> {
    if let Some(keys) = &args.keys {
        return Ok(KeySource::Keys(read_keys(keys)?));
    }
    if let Some(jwks) = &args.jwks {
        return Ok(
            if jwks.starts_with("http://") || jwks.starts_with("https://") {
                KeySource::JwksUrl(jwks.clone())
            } else {
                KeySource::JwksFile(jwks.into())
            },
        );
    }
    match &args.issuer {
        Some(issuer) => Ok(KeySource::JwksUrl(format!(
            "{}/.well-known/jwks.json",
            issuer.trim_end_matches('/')
        ))),
        None => Err(Failure::new("give --keys, --jwks or --issuer")),
    }
}

/// Where revocations come from, and how far they are checked: the
/// issuer's Redis or feed, else only the --revoked ids, else nothing when
/// --no-revocation-check says so (an error otherwise).
fn revocations(args: &VerifyArgs) -> Result<(Revocations, RevocationCheck), Failure> {
    let follows = args.redis_url.is_some() || args.feed_token.is_some();
    if args.no_revocation_check && follows {
        return Err(Failure::new(
            "--no-revocation-check contradicts --redis-url / --feed-token: give one or the other",
        ));
    }
    if let Some(url) = &args.redis_url {
        return Ok((
            Revocations::Redis { url: url.clone() },
            RevocationCheck::Followed,
        ));
    }
    match (&args.issuer, &args.feed_token) {
        (Some(issuer), Some(token)) => Ok((
            Revocations::Issuer {
                url: issuer.trim_end_matches('/').to_owned(),
                feed_token: super::read_token(token)?,
            },
            RevocationCheck::Followed,
        )),
        (Some(_), None) if !args.no_revocation_check => Err(Failure::new(
            "give --feed-token (from `tessera admin token --feed`) to follow the issuer's \
             revocations, or --redis-url (or --no-revocation-check to decide without them)",
        )),
        (None, Some(_)) => Err(Failure::new(
            "--feed-token needs --issuer: the feed is the issuer's",
        )),
        // Offline: only the ids given with --revoked, or nothing if asked.
        _ => {
            let check = offline_revocation_check(args)?;
            let revocations = match check {
                RevocationCheck::Skipped => Revocations::Unchecked,
                _ => {
                    let view = RevocationView::new();
                    view.confirm_current();
                    Revocations::View(view)
                }
            };
            Ok((revocations, check))
        }
    }
}

pub(super) fn verify(args: VerifyArgs, limits: &Limits) -> Result<(), Failure> {
    let t = read_token(&args.token)?;
    let service = args
        .service
        .clone()
        .ok_or_else(|| Failure::new("give --service: the Verifier checks for one tool server"))?;
    let revoked = args
        .revoked
        .iter()
        .map(|h| hex::decode(h).map_err(|_| Failure::new(format!("`{h}` is not hex"))))
        .collect::<Result<Vec<_>, _>>()?;
    let holder = args.holder_key.as_deref().map(read_key_pair).transpose()?;
    let request = CheckRequest {
        operation: args.operation.clone(),
        resource: args.resource.clone(),
        facts: Vec::new(),
        amount: args.amount.clone(),
    };
    let source = key_source(&args)?;
    let jwks_url = match &source {
        KeySource::JwksUrl(url) => Some(url.clone()),
        _ => None,
    };
    let (revocations, revocation_check) = revocations(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the runtime: {e}")))?;
    let outcome = runtime.block_on(async {
        match &revocations {
            Revocations::Issuer { url, feed_token } => {
                super::http::check_feed(url, feed_token).await?;
            }
            Revocations::Redis { url } => check_redis(url).await?,
            _ => {}
        }
        let verifier = Verifier::builder(service.as_str())
            .keys(source)
            .revocations(revocations)
            .limits(limits.clone())
            .max_staleness(LOAD_TIMEOUT)
            .build()
            .await;
        let verifier = match (verifier, &jwks_url) {
            (Ok(v), _) => v,
            // Say why the key set could not be fetched when that is why.
            (Err(e), Some(url)) => {
                super::http::probe(url).await?;
                return Err(Failure::new(e));
            }
            (Err(e), None) => return Err(Failure::new(e)),
        };
        if let Some(view) = verifier.revocations() {
            let far = now() + chrono::Duration::days(365);
            view.apply(revoked.iter().map(|id| (id.as_slice(), far)), None)
                .map_err(Failure::new)?;
        }
        if !verifier.ready(LOAD_TIMEOUT).await {
            return Err(Failure::new(format!(
                "revocations could not be loaded within {} s",
                LOAD_TIMEOUT.as_secs()
            )));
        }
        // Possession is proven the way a client proves it: a DPoP proof.
        let url = service.as_str().to_owned();
        let proof = match &holder {
            Some(kp) => Some(dpop_proof(kp, &t, &url)?),
            None => None,
        };
        let presentation = Presentation {
            token: &t,
            dpop: proof.as_deref(),
            method: "POST",
            url: &url,
        };
        Ok(verifier.check(&presentation, &request).await)
    })?;
    report_verdict(
        outcome,
        |g| (g.custody(), &g.token_id, g.expires_at),
        (&request.operation, &request.resource),
        args.json,
        revocation_check,
    )
}

/// Connects to the Redis at `url` once, so that one that is not running or
/// does not answer is reported at once by its cause, instead of as a
/// follower that never catches up. (A cluster URL is left to the follower.)
async fn check_redis(url: &str) -> Result<(), Failure> {
    if url.starts_with("redis+cluster://") {
        return Ok(());
    }
    let shown = crate::verify::follow::redact_url(url);
    let client =
        redis::Client::open(url).map_err(|e| Failure::new(format!("--redis-url {shown}: {e}")))?;
    let wait = super::http::QUICK_TIMEOUT;
    match tokio::time::timeout(wait, client.get_multiplexed_async_connection()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(format!(
            "cannot connect to Redis at {shown}: {e}; is the issuer's Redis running there?"
        ))),
        Err(_) => Err(Failure::new(format!(
            "Redis at {shown} did not answer within {} s; is the URL right?",
            wait.as_secs()
        ))),
    }
}

fn dpop_proof(kp: &biscuit_auth::KeyPair, token: &str, url: &str) -> Result<String, Failure> {
    let bytes: [u8; 32] = kp
        .private()
        .to_bytes()
        .as_slice()
        .try_into()
        .map_err(|_| Failure::new("--holder-key must be an Ed25519 key"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&bytes);
    let mut jti = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut jti);
    let claims = DpopClaims {
        jti: hex::encode(jti),
        htm: "POST".into(),
        htu: url.into(),
        iat: now().timestamp(),
        ath: Some(jose::access_token_hash(token)),
    };
    jose::sign(&key, Some("dpop+jwt"), true, &claims).map_err(Failure::new)
}
