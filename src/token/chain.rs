//! The authority block's claims and the holder chain, read from the blocks.
//!
//! The holder starts as the authority block's `agent_key`. Each third-party
//! block must be signed by the current holder and name exactly one next
//! holder with `delegated_to(<agent>, <key>)`; first-party blocks only narrow.
//!
//! The person a token acts for (`on_behalf_of`) and the earlier actors
//! (`prior_actor`) are read from the authority block only, the issuer's: a
//! later block is written by a holder, and the shape gate refuses any such
//! fact there, so no holder can make a token act for someone. At most one
//! `on_behalf_of`, positions `0..n` each exactly once, well-formed values,
//! and no `prior_actor` without a person; anything else is malformed.
//!
//! The agent a delegation names is the delegator's claim: nothing checks it
//! against a registry. It is attributable to the delegator's key (which
//! signed the block), and the sub-agent's key is what must prove
//! possession. Ids under `agent://tessera/` are refused there.

use std::fmt;

use biscuit_auth::PublicKey;
use chrono::{DateTime, TimeZone, Utc};

use super::types::{AgentId, OnBehalf, Person, Resource, ResourcePattern, RESERVED_AGENT_PREFIX};
use super::wire::{block_facts, RawFact, Value};

/// Why the claims or the chain could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The authority block does not follow the Tessera schema.
    #[error("not a Tessera token: {0}")]
    Schema(String),
    /// A third-party block was signed by a key that is not the current holder.
    #[error("block {block} is signed by {signer}, not by the current holder {holder}")]
    WrongSigner {
        /// Index of the offending block.
        block: usize,
        /// The key that signed it.
        signer: String,
        /// The key that should have signed it.
        holder: String,
    },
    /// A third-party block on a bearer token (no holder to sign it).
    #[error("block {0} is a delegation on a token that is not bound to a key")]
    DelegationOnBearer(usize),
    /// A delegation block that does not name exactly one valid next holder.
    #[error("block {block}: {reason}")]
    BadDelegation {
        /// Index of the offending block.
        block: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// A holder key as a token names it (`ed25519/<hex>`), kept as bytes.
///
/// Comparing bytes with the key that signed a block (already checked by
/// biscuit-auth) avoids decoding a curve point per hop; a string that is not
/// a valid key simply never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HolderKey([u8; 32]);

impl HolderKey {
    /// Reads `ed25519/<64 hex digits>`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("ed25519/")
            .ok_or_else(|| "a holder key must be `ed25519/<hex>`".to_owned())?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes)
            .map_err(|_| "a holder key is 64 hex digits".to_owned())?;
        Ok(Self(bytes))
    }

    /// Whether `bytes` are this Ed25519 key's 32 bytes.
    pub fn matches_bytes(&self, bytes: &[u8; 32]) -> bool {
        self.0 == *bytes
    }

    /// Whether `key` is this Ed25519 key.
    pub fn matches(&self, key: &PublicKey) -> bool {
        key.algorithm() == biscuit_auth::format::schema::public_key::Algorithm::Ed25519
            && key.to_bytes() == self.0
    }
}

impl fmt::Display for HolderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519/{}", hex::encode(self.0))
    }
}

/// One hand-over: the agent that received the token and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The agent the token was handed to.
    pub agent: AgentId,
    /// Its key, which must sign the next hand-over or prove possession.
    pub key: HolderKey,
}

/// What the authority block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `token_id`.
    pub token_id: String,
    /// `agent`.
    pub agent: AgentId,
    /// `agent_key`, when the token is bound.
    pub agent_key: Option<HolderKey>,
    /// `right` / `right_prefix` facts as (action, pattern).
    pub rights: Vec<(String, ResourcePattern)>,
    /// `audience`, when the token names a tool server.
    pub audience: Option<String>,
    /// `issued_at`.
    pub issued_at: Option<DateTime<Utc>>,
    /// `expires_at`.
    pub expires_at: DateTime<Utc>,
    /// `on_behalf_of` and `prior_actor`: the person the token acts for and
    /// the agents that held a token for them before, oldest first.
    pub on_behalf: Option<OnBehalf>,
    /// `approved_by`: the person who approved the token, and the approval
    /// id, when it was minted after a person's approval.
    pub approval: Option<ApprovedBy>,
}

/// `approved_by(<issuer>, <subject>, <approval id>)`, read from the
/// authority block only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovedBy {
    /// The person who approved.
    pub person: Person,
    /// The approval id (the CIBA `auth_req_id`).
    pub approval_id: String,
}

/// Reads `approved_by`, failing closed on more than one or a malformed one.
fn approved_by(facts: &[RawFact]) -> Result<Option<ApprovedBy>, ChainError> {
    match one(facts, "approved_by")? {
        None => Ok(None),
        Some([Value::Str(issuer), Value::Str(subject), Value::Str(id)])
            if !id.is_empty() && id.len() <= 128 =>
        {
            Ok(Some(ApprovedBy {
                person: Person::parse(issuer, subject)
                    .map_err(|e| ChainError::Schema(format!("`approved_by`: {e}")))?,
                approval_id: id.clone(),
            }))
        }
        Some(_) => Err(ChainError::Schema(
            "`approved_by` must hold an issuer, a subject and an approval id".into(),
        )),
    }
}

/// The claims plus the hand-overs that follow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The authority block's claims.
    pub claims: Claims,
    /// Hand-overs in order.
    pub hops: Vec<Hop>,
}

impl Chain {
    /// The key that must prove possession, if the token is bound.
    pub fn holder(&self) -> Option<&HolderKey> {
        self.hops
            .last()
            .map(|h| &h.key)
            .or(self.claims.agent_key.as_ref())
    }

    /// The agents in order: the authority's agent, then each sub-agent.
    pub fn agents(&self) -> Vec<AgentId> {
        std::iter::once(self.claims.agent.clone())
            .chain(self.hops.iter().map(|h| h.agent.clone()))
            .collect()
    }
}

/// The whole chain of one token, for people and logs: the person it acts
/// for (if any), the earlier actors, the token's agent, then each sub-agent.
///
/// Displayed as `for <subject> at <issuer> via a -> b -> c` (`a -> b -> c`
/// for a token that acts for nobody). The person and the earlier actors come
/// from the authority block (the issuer's word); see [`Chain::agents`] for
/// what the sub-agent ids are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Custody<'a> {
    /// The person and the earlier actors, if the token acts for someone.
    pub on_behalf: Option<&'a OnBehalf>,
    /// The token's agent, then each sub-agent.
    pub agents: &'a [AgentId],
}

impl<'a> Custody<'a> {
    /// The person the token acts for.
    pub fn person(&self) -> Option<&'a Person> {
        self.on_behalf.map(|o| &o.person)
    }

    /// Every agent in order: the earlier actors, the token's agent, then
    /// each sub-agent. The last one is acting.
    pub fn actors(&self) -> impl Iterator<Item = &'a AgentId> {
        let prior: &'a [AgentId] = self.on_behalf.map_or(&[], |o| &o.prior_actors);
        prior.iter().chain(self.agents)
    }
}

impl fmt::Display for Custody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(person) = self.person() {
            write!(f, "for {person} via ")?;
        }
        for (i, agent) in self.actors().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{agent}")?;
        }
        Ok(())
    }
}

fn date_of(d: u64) -> Option<DateTime<Utc>> {
    i64::try_from(d)
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
}

fn one<'a>(facts: &'a [RawFact], name: &str) -> Result<Option<&'a [Value]>, ChainError> {
    let mut it = facts.iter().filter(|f| f.name == name);
    match (it.next(), it.next()) {
        (None, _) => Ok(None),
        (Some(f), None) => Ok(Some(&f.terms)),
        (Some(_), Some(_)) => Err(ChainError::Schema(format!("more than one `{name}` fact"))),
    }
}

fn one_str(facts: &[RawFact], name: &str) -> Result<Option<String>, ChainError> {
    match one(facts, name)? {
        None => Ok(None),
        Some([Value::Str(s)]) => Ok(Some(s.clone())),
        Some(_) => Err(ChainError::Schema(format!("`{name}` must hold one string"))),
    }
}

fn one_date(facts: &[RawFact], name: &str) -> Result<Option<DateTime<Utc>>, ChainError> {
    match one(facts, name)? {
        None => Ok(None),
        Some([Value::Date(d)]) => date_of(*d)
            .map(Some)
            .ok_or_else(|| ChainError::Schema(format!("`{name}` is out of range"))),
        Some(_) => Err(ChainError::Schema(format!("`{name}` must hold one date"))),
    }
}

/// Reads `on_behalf_of(<issuer>, <subject>)` and `prior_actor(<position>,
/// <agent>)` from the authority block's facts, failing closed on anything
/// but one person and positions `0..n` each exactly once.
fn on_behalf(facts: &[RawFact]) -> Result<Option<OnBehalf>, ChainError> {
    let person = match one(facts, "on_behalf_of")? {
        None => None,
        Some([Value::Str(issuer), Value::Str(subject)]) => Some(
            Person::parse(issuer, subject)
                .map_err(|e| ChainError::Schema(format!("`on_behalf_of`: {e}")))?,
        ),
        Some(_) => {
            return Err(ChainError::Schema(
                "`on_behalf_of` must hold an issuer and a subject".into(),
            ))
        }
    };
    let mut actors: Vec<(i64, AgentId)> = Vec::new();
    for f in facts.iter().filter(|f| f.name == "prior_actor") {
        match f.terms.as_slice() {
            [Value::Int(position), Value::Str(agent)] => {
                let agent = AgentId::parse(agent)
                    .map_err(|e| ChainError::Schema(format!("`prior_actor`: {e}")))?;
                actors.push((*position, agent));
            }
            _ => {
                return Err(ChainError::Schema(
                    "`prior_actor` must hold a position and an agent".into(),
                ))
            }
        }
    }
    if actors.len() > super::types::MAX_PRIOR_ACTORS {
        return Err(ChainError::Schema(format!(
            "more than {} `prior_actor` facts",
            super::types::MAX_PRIOR_ACTORS
        )));
    }
    let Some(person) = person else {
        return match actors.is_empty() {
            true => Ok(None),
            false => Err(ChainError::Schema(
                "`prior_actor` in a token that acts for nobody".into(),
            )),
        };
    };
    actors.sort_by_key(|(position, _)| *position);
    for (expected, (position, _)) in actors.iter().enumerate() {
        if i64::try_from(expected).ok() != Some(*position) {
            return Err(ChainError::Schema(
                "`prior_actor` positions must be 0, 1, … each exactly once".into(),
            ));
        }
    }
    Ok(Some(OnBehalf {
        person,
        prior_actors: actors.into_iter().map(|(_, agent)| agent).collect(),
    }))
}

/// Reads the authority block's claims from its payload.
pub fn claims(authority_payload: &[u8]) -> Result<Claims, ChainError> {
    let facts = block_facts(authority_payload).map_err(|e| ChainError::Schema(e.to_string()))?;
    let missing = |n: &str| ChainError::Schema(format!("no `{n}` fact"));
    if one(&facts, "tessera_schema")? != Some(&[Value::Int(super::schema::SCHEMA_VERSION)][..]) {
        return Err(ChainError::Schema(
            "unsupported or missing tessera_schema".into(),
        ));
    }
    let agent = one_str(&facts, "agent")?.ok_or_else(|| missing("agent"))?;
    let agent = AgentId::parse(&agent).map_err(|e| ChainError::Schema(e.to_string()))?;
    let agent_key = one_str(&facts, "agent_key")?
        .map(|k| HolderKey::parse(&k))
        .transpose()
        .map_err(ChainError::Schema)?;
    let mut rights = Vec::new();
    for f in &facts {
        // Built directly, not re-parsed: an exact right on `reports/*` stays exact.
        let (action, pattern) = match (f.name.as_str(), f.terms.as_slice()) {
            ("right", [Value::Str(a), Value::Str(r)]) => {
                (a, Resource::parse(r).map(ResourcePattern::Exact))
            }
            ("right_prefix", [Value::Str(a), Value::Str(p)]) => {
                (a, Resource::parse(p).map(ResourcePattern::Prefix))
            }
            ("right" | "right_prefix", _) => {
                return Err(ChainError::Schema(format!("malformed `{}` fact", f.name)))
            }
            _ => continue,
        };
        let pattern = pattern.map_err(|e| ChainError::Schema(e.to_string()))?;
        rights.push((action.clone(), pattern));
    }
    Ok(Claims {
        token_id: one_str(&facts, "token_id")?.ok_or_else(|| missing("token_id"))?,
        agent,
        agent_key,
        rights,
        audience: one_str(&facts, "audience")?,
        issued_at: one_date(&facts, "issued_at")?,
        expires_at: one_date(&facts, "expires_at")?.ok_or_else(|| missing("expires_at"))?,
        on_behalf: on_behalf(&facts)?,
        approval: approved_by(&facts)?,
    })
}

/// Walks the blocks: `payloads[i]` and `external_keys[i]` describe block `i`
/// (index 0 is the authority block).
pub fn walk(payloads: &[&[u8]], external_keys: &[Option<PublicKey>]) -> Result<Chain, ChainError> {
    let authority = payloads
        .first()
        .ok_or_else(|| ChainError::Schema("no authority block".into()))?;
    if payloads.len() != external_keys.len() {
        return Err(ChainError::Schema("block count mismatch".into()));
    }
    let claims = claims(authority)?;
    let mut chain = Chain {
        claims,
        hops: Vec::new(),
    };
    for (i, (payload, signer)) in payloads.iter().zip(external_keys).enumerate().skip(1) {
        let Some(signer) = signer else { continue };
        let holder = *chain.holder().ok_or(ChainError::DelegationOnBearer(i))?;
        if !holder.matches(signer) {
            return Err(ChainError::WrongSigner {
                block: i,
                signer: signer.to_string(),
                holder: holder.to_string(),
            });
        }
        let bad = |reason: String| ChainError::BadDelegation { block: i, reason };
        let facts = block_facts(payload).map_err(|e| bad(e.to_string()))?;
        let mut named = facts.iter().filter(|f| f.name == "delegated_to");
        let hop = match (named.next(), named.next()) {
            (Some(f), None) => match f.terms.as_slice() {
                [Value::Str(agent), Value::Str(key)] => Hop {
                    agent: AgentId::parse(agent)
                        .map_err(|e| bad(e.to_string()))
                        .and_then(|a| match a.is_reserved() {
                            true => Err(bad(format!(
                                "agent ids under {RESERVED_AGENT_PREFIX} are reserved"
                            ))),
                            false => Ok(a),
                        })?,
                    key: HolderKey::parse(key).map_err(bad)?,
                },
                _ => return Err(bad("`delegated_to` must hold an agent and a key".into())),
            },
            _ => return Err(bad("a delegation names exactly one `delegated_to`".into())),
        };
        chain.hops.push(hop);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(name: &str, terms: Vec<Value>) -> RawFact {
        RawFact {
            name: name.to_owned(),
            terms,
        }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    fn person() -> RawFact {
        fact("on_behalf_of", vec![s("https://idp.example"), s("alice")])
    }

    fn actor(position: i64, agent: &str) -> RawFact {
        fact("prior_actor", vec![Value::Int(position), s(agent)])
    }

    #[test]
    fn earlier_actors_are_read_in_position_order_whatever_the_fact_order() {
        let got = on_behalf(&[actor(1, "agent://a/b"), person(), actor(0, "agent://a/a")])
            .unwrap()
            .unwrap();
        assert_eq!(got.person.subject(), "alice");
        let ids: Vec<&str> = got.prior_actors.iter().map(AgentId::as_str).collect();
        assert_eq!(ids, ["agent://a/a", "agent://a/b"]);
        assert_eq!(on_behalf(&[]).unwrap(), None);
    }

    #[test]
    fn two_persons_gaps_duplicates_and_orphans_are_schema_errors() {
        for facts in [
            vec![person(), person()],
            vec![person(), actor(1, "agent://a/a")],
            vec![person(), actor(0, "agent://a/a"), actor(0, "agent://a/b")],
            vec![person(), actor(-1, "agent://a/a")],
            vec![person(), actor(i64::MAX, "agent://a/a")],
            vec![actor(0, "agent://a/a")],
            vec![fact("on_behalf_of", vec![s("https://idp.example")])],
            vec![fact("on_behalf_of", vec![s("idp"), s("alice")])],
            vec![
                person(),
                fact("prior_actor", vec![s("0"), s("agent://a/a")]),
            ],
            vec![person(), actor(0, "not an agent")],
        ] {
            assert!(
                matches!(on_behalf(&facts), Err(ChainError::Schema(_))),
                "{facts:?}"
            );
        }
    }

    #[test]
    fn custody_prints_the_person_then_every_actor_in_order() {
        let agents = [
            AgentId::parse("agent://a/main").unwrap(),
            AgentId::parse("agent://a/sub").unwrap(),
        ];
        let on = OnBehalf {
            person: Person::parse("https://idp.example", "alice").unwrap(),
            prior_actors: vec![AgentId::parse("agent://a/first").unwrap()],
        };
        let with = Custody {
            on_behalf: Some(&on),
            agents: &agents,
        };
        assert_eq!(
            with.to_string(),
            "for alice at https://idp.example via agent://a/first -> agent://a/main -> agent://a/sub"
        );
        let without = Custody {
            on_behalf: None,
            agents: &agents,
        };
        assert_eq!(without.to_string(), "agent://a/main -> agent://a/sub");
        assert_eq!(without.person(), None);
    }
}
