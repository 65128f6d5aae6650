//! Minting: one agent, one action, one resource or prefix, a few minutes.

use biscuit_auth::builder::{self, Term};
use biscuit_auth::datalog::SymbolTable;
use biscuit_auth::{Biscuit, BlockBuilder, PublicKey};
use chrono::{DateTime, Utc};
use rand::{CryptoRng, RngCore};
use serde::Serialize;

use super::keys::RootKeyPair;
use super::schema::{self, add, date};
use super::types::{Action, AgentId, Audience, Lifetime, OnBehalf, ResourcePattern};
use super::{encode, TokenError};

/// What one token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// The agent the token is issued to.
    pub agent: AgentId,
    /// The one action it allows.
    pub action: Action,
    /// The resource, or resource prefix, it allows the action on.
    pub resource: ResourcePattern,
    /// The tool server it is meant for, if the request named one.
    pub audience: Option<Audience>,
    /// How long it lives.
    pub lifetime: Lifetime,
    /// The agent's public key, to bind the token to it (proof of possession).
    pub holder_key: Option<PublicKey>,
    /// The person the token acts for, if any, and the earlier actors.
    pub on_behalf: Option<OnBehalf>,
}

/// Most further actions one token may grant beyond its first.
pub const MAX_ACTIONS: usize = 63;

/// A person's approval that a token carries (DESIGN.md, "Human approval,
/// amounts and budgets"): `approved_by(<issuer>, <subject>, <approval id>)`
/// in the authority block, and the approved amount as a cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// The person who approved.
    pub person: super::Person,
    /// The approval id (the CIBA `auth_req_id`).
    pub approval_id: String,
    /// The largest amount of one operation the person approved, if any.
    pub max_amount: Option<super::Amount>,
}

/// Mints a token for a capability a person approved: [`mint`] plus the
/// `approved_by` fact and, when the approval names an amount, the check
/// `amount($c, $v), $c == <currency>, $v <= <minor units>` in the
/// authority block (so no holder can lift it).
pub fn mint_approved(
    cap: &Capability,
    approved: &Approved,
    root: &RootKeyPair,
    now: DateTime<Utc>,
) -> Result<Minted, TokenError> {
    mint_inner(
        cap,
        &[],
        Some(approved),
        None,
        root,
        now,
        &mut rand::rngs::OsRng,
    )
}

/// A freshly minted token and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Minted {
    /// The token, base64url.
    pub token: String,
    /// Its unique id (`token_id` fact).
    pub token_id: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Revocation id of the authority block, hex: revoking it kills the token
    /// and everything derived from it.
    pub revocation_id: String,
}

/// Mints a token, with randomness from the operating system.
pub fn mint(
    cap: &Capability,
    root: &RootKeyPair,
    now: DateTime<Utc>,
) -> Result<Minted, TokenError> {
    mint_with_rng(cap, root, now, &mut rand::rngs::OsRng)
}

/// Mints a token that allows `cap.action` and every action of `more` on
/// `cap.resource` (one token for several tools of one tool server, as an
/// authorization-code client asks for). With `more` empty (or holding only
/// `cap.action`) the token is exactly what [`mint`] writes.
pub fn mint_actions(
    cap: &Capability,
    more: &[Action],
    root: &RootKeyPair,
    now: DateTime<Utc>,
) -> Result<Minted, TokenError> {
    mint_actions_with_rng(cap, more, root, now, &mut rand::rngs::OsRng)
}

/// Mints a token with the given source of randomness (token id and the
/// ephemeral block key). With a seeded generator the output is reproducible,
/// which the golden-token tests rely on.
pub fn mint_with_rng<R: RngCore + CryptoRng>(
    cap: &Capability,
    root: &RootKeyPair,
    now: DateTime<Utc>,
    rng: &mut R,
) -> Result<Minted, TokenError> {
    mint_inner(cap, &[], None, None, root, now, rng)
}

/// [`mint_actions`] with the given source of randomness.
pub fn mint_actions_with_rng<R: RngCore + CryptoRng>(
    cap: &Capability,
    more: &[Action],
    root: &RootKeyPair,
    now: DateTime<Utc>,
    rng: &mut R,
) -> Result<Minted, TokenError> {
    mint_inner(cap, more, None, None, root, now, rng)
}

/// [`mint_with_rng`] with a cumulative budget in the authority block
/// (`budget(id, currency, limit)`, see `token::budget`).
pub fn mint_with_budgets<R: RngCore + CryptoRng>(
    cap: &Capability,
    budget: Option<&super::budget::Budget>,
    root: &RootKeyPair,
    now: DateTime<Utc>,
    rng: &mut R,
) -> Result<Minted, TokenError> {
    mint_inner(cap, &[], None, budget, root, now, rng)
}

fn mint_inner<R: RngCore + CryptoRng>(
    cap: &Capability,
    more: &[Action],
    approved: Option<&Approved>,
    budget: Option<&super::budget::Budget>,
    root: &RootKeyPair,
    now: DateTime<Utc>,
    rng: &mut R,
) -> Result<Minted, TokenError> {
    if more.len() > MAX_ACTIONS {
        return Err(TokenError::TooLarge(format!(
            "a token grants at most {} actions",
            MAX_ACTIONS + 1
        )));
    }
    let issued_at = truncate(now)?;
    let lifetime = chrono::Duration::from_std(cap.lifetime.duration())
        .map_err(|_| TokenError::Internal("lifetime out of range".into()))?;
    let expires_at = issued_at
        .checked_add_signed(lifetime)
        .ok_or_else(|| TokenError::Internal("expiry out of range".into()))?;
    let token_id = new_token_id(now, rng);

    let mut block = add(
        BlockBuilder::new(),
        "tessera_schema({schema});
         token_id({token_id});
         agent({agent});
         issued_at({issued_at});
         expires_at({expires_at});
         check if time($t), $t <= {expires_at};",
        [
            ("schema", builder::int(schema::SCHEMA_VERSION)),
            ("token_id", builder::string(&token_id)),
            ("agent", builder::string(cap.agent.as_str())),
            ("issued_at", date(issued_at)),
            ("expires_at", date(expires_at)),
        ],
    )?;
    let actions: Vec<Action> = std::iter::once(cap.action.clone())
        .chain(more.iter().cloned())
        .collect();
    block = schema::rights(block, &actions, &cap.resource)?;
    if let Some(aud) = &cap.audience {
        block = add(
            block,
            "audience({audience});
             check if service($s), $s == {audience};",
            [("audience", builder::string(aud.as_str()))],
        )?;
    }
    if let Some(on) = &cap.on_behalf {
        if on.prior_actors.len() > super::types::MAX_PRIOR_ACTORS {
            return Err(TokenError::TooLarge(format!(
                "a token names at most {} earlier actors",
                super::types::MAX_PRIOR_ACTORS
            )));
        }
        block = add(
            block,
            "on_behalf_of({issuer}, {subject});",
            [
                ("issuer", builder::string(on.person.issuer())),
                ("subject", builder::string(on.person.subject())),
            ],
        )?;
        for (position, actor) in on.prior_actors.iter().enumerate() {
            let position = i64::try_from(position)
                .map_err(|_| TokenError::Internal("too many prior actors".into()))?;
            block = add(
                block,
                "prior_actor({position}, {agent});",
                [
                    ("position", builder::int(position)),
                    ("agent", builder::string(actor.as_str())),
                ],
            )?;
        }
    }
    if let Some(a) = approved {
        block = add(
            block,
            "approved_by({issuer}, {subject}, {approval});",
            [
                ("issuer", builder::string(a.person.issuer())),
                ("subject", builder::string(a.person.subject())),
                ("approval", builder::string(&a.approval_id)),
            ],
        )?;
        if let Some(max) = &a.max_amount {
            block = add(
                block,
                "check if amount($c, $v), $c == {currency}, $v <= {max};",
                [
                    ("currency", builder::string(max.currency())),
                    ("max", builder::int(max.minor())),
                ],
            )?;
        }
    }
    if let Some(key) = &cap.holder_key {
        let key: Term = builder::string(&key.to_string());
        block = add(
            block,
            "agent_key({key});
             check if holder_proven(true);",
            [("key", key)],
        )?;
    }
    if let Some(b) = budget {
        block = super::budget::declare(block, b)?;
    }
    let biscuit = Biscuit::builder()
        .merge(block)
        .root_key_id(root.id)
        .build_with_rng(&root.keypair, SymbolTable::new(), rng)?;
    let revocation_id = biscuit
        .revocation_identifiers()
        .first()
        .map(hex::encode)
        .ok_or_else(|| TokenError::Internal("token without authority block".into()))?;
    Ok(Minted {
        token: encode(&biscuit.to_vec()?),
        token_id,
        issued_at,
        expires_at,
        revocation_id,
    })
}

/// A token id: 16 bytes in hex, the first 6 the minting time in
/// milliseconds since the Unix epoch (big-endian, as in a UUIDv7), the other
/// 10 random.
///
/// Ids minted later sort later, so the issuer's ledger appends instead of
/// writing to a random page of its index for every token; 80 random bits
/// keep two tokens minted in the same millisecond apart.
pub(crate) fn new_token_id<R: RngCore>(now: DateTime<Utc>, rng: &mut R) -> String {
    let mut id = [0u8; 16];
    // Before 1970 (never, with a sane clock) the time part is zero.
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    rng.fill_bytes(&mut id[6..]);
    hex::encode(id)
}

/// Drops sub-second precision (tokens carry whole seconds).
pub(crate) fn truncate(t: DateTime<Utc>) -> Result<DateTime<Utc>, TokenError> {
    DateTime::from_timestamp(t.timestamp(), 0)
        .filter(|t| t.timestamp() >= 0)
        .ok_or_else(|| TokenError::Internal("time out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    #[test]
    fn token_ids_are_32_hex_digits_that_sort_by_minting_time() {
        let earlier = new_token_id(at(1_790_000_000_123), &mut OsRng);
        let later = new_token_id(at(1_790_000_000_124), &mut OsRng);
        for id in [&earlier, &later] {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(&earlier[..12], "01a0c4506c7b");
        assert!(earlier < later, "{earlier} !< {later}");
    }

    #[test]
    fn token_ids_of_the_same_millisecond_differ() {
        let now = at(1_790_000_000_000);
        let a = new_token_id(now, &mut OsRng);
        let b = new_token_id(now, &mut OsRng);
        assert_eq!(a[..12], b[..12]);
        assert_ne!(a, b);
    }
}
