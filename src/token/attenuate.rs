//! Offline narrowing: attenuation (first-party block) and delegation
//! (third-party block signed by the current holder). Neither needs the root
//! private key, and neither can widen: a block only adds checks.

use biscuit_auth::{builder, Algorithm, BlockBuilder, KeyPair, PublicKey, UnverifiedBiscuit};
use rand::{CryptoRng, RngCore};

use super::chain::{walk, Chain};
use super::schema::{add, narrowing_checks, Narrowing};
use super::types::{AgentId, InvalidInput};
use super::{decode, encode, Limits, TokenError};

/// Reads a token without verifying it, with its chain.
fn open(token: &str, limits: &Limits) -> Result<(UnverifiedBiscuit, Chain), TokenError> {
    let bytes = decode(token, limits)?;
    let layout = super::wire::scan(&bytes, limits.max_blocks)?;
    let unverified = UnverifiedBiscuit::from(&bytes)?;
    let chain = walk(&layout.payloads, &unverified.external_public_keys())?;
    Ok((unverified, chain))
}

/// Refuses a narrowing that is not inside what the token grants: such a block
/// would leave a token that allows nothing, which is almost always a mistake.
fn check_narrower(chain: &Chain, n: &Narrowing) -> Result<(), TokenError> {
    let c = &chain.claims;
    if let Some(action) = &n.action {
        if !c.rights.iter().any(|(a, _)| a == action.as_str()) {
            return Err(TokenError::NotNarrower(format!(
                "action `{action}` is not granted by this token"
            )));
        }
    }
    if let Some(resource) = &n.resource {
        let covered = c
            .rights
            .iter()
            .any(|(a, p)| n.action.as_ref().is_none_or(|x| x.as_str() == a) && p.covers(resource));
        if !covered {
            return Err(TokenError::NotNarrower(format!(
                "resource `{resource}` is outside this token's resources"
            )));
        }
    }
    if let Some(exp) = n.expires_at {
        if exp > c.expires_at {
            return Err(TokenError::NotNarrower(format!(
                "expiry {exp} is after the token's own expiry {}",
                c.expires_at
            )));
        }
    }
    if let (Some(aud), Some(token_aud)) = (&n.audience, &c.audience) {
        if aud.as_str() != token_aud {
            return Err(TokenError::NotNarrower(format!(
                "audience `{aud}` differs from the token's audience `{token_aud}`"
            )));
        }
    }
    Ok(())
}

/// Appends a first-party block that narrows the token.
pub fn attenuate(token: &str, n: &Narrowing, limits: &Limits) -> Result<String, TokenError> {
    attenuate_with_rng(token, n, limits, &mut rand::rngs::OsRng)
}

/// [`attenuate`] with the given source of randomness (the next block key).
///
/// (Its signature repeats [`delegate_with_rng`]'s on purpose: each public
/// operation has a plain form and a `_with_rng` form for reproducible tests.)
pub fn attenuate_with_rng<R: RngCore + CryptoRng>(
    token: &str,
    n: &Narrowing,
    limits: &Limits,
    rng: &mut R,
) -> Result<String, TokenError> {
    if n.is_empty() {
        return Err(TokenError::NotNarrower("no narrowing given".into()));
    }
    let (unverified, chain) = open(token, limits)?;
    check_narrower(&chain, n)?;
    let block = narrowing_checks(BlockBuilder::new(), n)?;
    let next = KeyPair::new_with_rng(Algorithm::Ed25519, rng);
    let out = unverified.append_with_keypair(&next, block)?;
    encode_checked(&out, limits)
}

/// Hands the token to a sub-agent: a third-party block signed by the current
/// holder's key that names the next holder, plus any narrowing.
///
/// The sub-agent's id `to` is the delegator's claim, attributable to the
/// delegator's key and verified by nobody; ids under `agent://tessera/`
/// are refused.
pub fn delegate(
    token: &str,
    holder: &KeyPair,
    to: &AgentId,
    to_key: &PublicKey,
    n: &Narrowing,
    limits: &Limits,
) -> Result<String, TokenError> {
    delegate_with_rng(token, holder, to, to_key, n, limits, &mut rand::rngs::OsRng)
}

/// [`delegate`] with the given source of randomness (the next block key).
pub fn delegate_with_rng<R: RngCore + CryptoRng>(
    token: &str,
    holder: &KeyPair,
    to: &AgentId,
    to_key: &PublicKey,
    n: &Narrowing,
    limits: &Limits,
    rng: &mut R,
) -> Result<String, TokenError> {
    if to.is_reserved() {
        return Err(InvalidInput::AgentId(
            "agent ids under agent://tessera/ are reserved for the issuer",
        )
        .into());
    }
    let (unverified, chain) = open(token, limits)?;
    let current = chain.holder().ok_or(TokenError::NotBound)?;
    if !current.matches(&holder.public()) {
        return Err(TokenError::NotHolder {
            holder: current.to_string(),
        });
    }
    if to_key.algorithm() != biscuit_auth::format::schema::public_key::Algorithm::Ed25519 {
        return Err(TokenError::NotNarrower(
            "sub-agent key must be Ed25519".into(),
        ));
    }
    check_narrower(&chain, n)?;
    let block = add(
        BlockBuilder::new(),
        "delegated_to({agent}, {key});",
        [
            ("agent", builder::string(to.as_str())),
            ("key", builder::string(&to_key.to_string())),
        ],
    )?;
    let block = narrowing_checks(block, n)?;
    let signed = unverified
        .third_party_request()?
        .create_block(&holder.private(), block)?
        .serialize()?;
    let next = KeyPair::new_with_rng(Algorithm::Ed25519, rng);
    let out = unverified.append_third_party_with_keypair(&signed, next)?;
    encode_checked(&out, limits)
}

/// Serializes, refusing to produce a token the verifier would refuse: over
/// the size or block limits, or with a new block the shape gate refuses
/// (which would be a bug here: Tessera writes only checks of the shapes the
/// gate accepts). Earlier blocks are not judged: narrowing a token that
/// verifiers refuse leaves a token they refuse.
fn encode_checked(t: &UnverifiedBiscuit, limits: &Limits) -> Result<String, TokenError> {
    let bytes = t.to_vec()?;
    if bytes.len() > limits.max_token_bytes || t.block_count() > limits.max_blocks {
        return Err(TokenError::TooLarge(format!(
            "the result would be {} bytes in {} blocks (limits: {} bytes, {} blocks)",
            bytes.len(),
            t.block_count(),
            limits.max_token_bytes,
            limits.max_blocks
        )));
    }
    let layout = super::wire::scan(&bytes, limits.max_blocks)?;
    let third_party: Vec<bool> = t
        .external_public_keys()
        .iter()
        .map(Option::is_some)
        .collect();
    let last = layout.payloads.len().saturating_sub(1);
    super::gate::check_from(&layout.payloads, &third_party, last)
        .map_err(|r| TokenError::Internal(format!("the new block fails the shape gate: {r}")))?;
    Ok(encode(&bytes))
}
