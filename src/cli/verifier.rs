//! `tessera token verify` with the Verifier: root keys from a JWKS file or
//! URL (or the issuer's), revocations followed from Redis or the issuer's
//! feed, and possession proven with a DPoP proof made from --holder-key.

use std::time::Duration;

use super::{
    emit, emit_allowed, now, read_key_pair, read_keys, read_token, to_json, Failure, VerifyArgs,
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

fn revocations(args: &VerifyArgs) -> Result<Revocations, Failure> {
    if let Some(url) = &args.redis_url {
        return Ok(Revocations::Redis { url: url.clone() });
    }
    match (&args.issuer, &args.feed_token) {
        (Some(issuer), Some(token)) => Ok(Revocations::Issuer {
            url: issuer.trim_end_matches('/').to_owned(),
            feed_token: super::read_token(token)?,
        }),
        (Some(_), None) => Err(Failure::new(
            "give --feed-token (from `tessera admin token --feed`) to follow the issuer's \
             revocations, or --redis-url",
        )),
        // Only the ids given with --revoked: an offline check.
        (None, _) => {
            let view = RevocationView::new();
            view.confirm_current();
            Ok(Revocations::View(view))
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
    };
    let source = key_source(&args)?;
    let revocations = revocations(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the runtime: {e}")))?;
    let outcome = runtime.block_on(async {
        let verifier = Verifier::builder(service.as_str())
            .keys(source)
            .revocations(revocations)
            .limits(limits.clone())
            .max_staleness(LOAD_TIMEOUT)
            .build()
            .await
            .map_err(Failure::new)?;
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
    match outcome {
        Ok(grant) => {
            if args.json {
                emit(&format!("{}\n", to_json(&grant)?))
            } else {
                emit_allowed(
                    &grant.chain,
                    &request.operation,
                    &request.resource,
                    &grant.token_id,
                    grant.expires_at,
                )
            }
        }
        Err(rejection) => Err(Failure {
            message: format!("denied: {rejection}"),
            code: 1,
        }),
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
