//! Inspection: what a token says, block by block, verified or not.

use std::fmt;

use biscuit_auth::{Biscuit, UnverifiedBiscuit};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::authorize::{denial_from_biscuit, Denial};
use super::chain::walk;
use super::keys::KeySet;
use super::reason::Reason;
use super::types::{AgentId, OnBehalf, ResourcePattern};
use super::wire::scan;
use super::{decode, Limits, TokenError};

/// Everything a token says, for people and for logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// Whether the signatures were checked against a key set. When false,
    /// nothing below is trustworthy.
    pub verified: bool,
    /// The root key id the token names.
    pub root_key_id: Option<u32>,
    /// The token id.
    pub token_id: String,
    /// The agent it was issued to.
    pub agent: String,
    /// The key it is bound to, if any.
    pub agent_key: Option<String>,
    /// Granted rights.
    pub rights: Vec<RightView>,
    /// The tool server it is meant for, if any.
    pub audience: Option<String>,
    /// When it was issued.
    pub issued_at: Option<DateTime<Utc>>,
    /// When it expires (blocks may narrow this further).
    pub expires_at: DateTime<Utc>,
    /// The person the token acts for and the earlier actors, oldest first,
    /// read from the authority block only (serialized as `person` and
    /// `prior_actors`, absent for a token that acts for nobody).
    #[serde(flatten)]
    pub on_behalf: Option<OnBehalf>,
    /// The agents in order: the token's agent, then each sub-agent.
    pub chain: Vec<String>,
    /// The key that must prove possession, if the token is bound.
    pub holder: Option<String>,
    /// Each block.
    pub blocks: Vec<BlockView>,
}

/// One granted right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RightView {
    /// The action.
    pub action: String,
    /// The resource name, or the prefix when `prefix` is true (literal text:
    /// no `*` is added or escaped).
    pub resource: String,
    /// Whether every resource starting with `resource` is covered.
    pub prefix: bool,
}

/// The kind of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// The issuer's block, signed by the root key.
    Authority,
    /// A first-party block: checks only.
    Attenuation,
    /// A third-party block signed by the holder, naming the next holder.
    Delegation,
}

/// One block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockView {
    /// Position in the token, 0 for the authority block.
    pub index: usize,
    /// What kind of block it is.
    pub kind: BlockKind,
    /// The external key that signed it (delegation blocks).
    pub signed_by: Option<String>,
    /// The block's revocation id, hex.
    pub revocation_id: String,
    /// The block's Datalog.
    pub datalog: String,
}

/// Reads a token. With a key set, its signatures are verified first and a
/// failure is returned as [`TokenError::Rejected`]; without one, the result
/// says `verified: false`.
pub fn inspect(
    token: &str,
    keys: Option<&KeySet>,
    limits: &Limits,
) -> Result<Inspection, TokenError> {
    let bytes = decode(token, limits)?;
    let layout = scan(&bytes, limits.max_blocks)?;
    if let Some(keys) = keys {
        if layout.root_key_id.and_then(|id| keys.get(id)).is_none() {
            return Err(TokenError::Rejected(Denial::new(
                Reason::UnknownKeyId,
                "the token's root key id is not in the key set",
            )));
        }
        Biscuit::from(&bytes, keys).map_err(|e| TokenError::Rejected(denial_from_biscuit(&e)))?;
    }
    let t = UnverifiedBiscuit::from(&bytes)?;
    let external = t.external_public_keys();
    let chain = walk(&layout.payloads, &external)?;
    let revocation_ids = t.revocation_identifiers();
    let mut blocks = Vec::with_capacity(t.block_count());
    for (index, (signer, rid)) in external.iter().zip(&revocation_ids).enumerate() {
        blocks.push(BlockView {
            index,
            kind: match (index, signer) {
                (0, _) => BlockKind::Authority,
                (_, None) => BlockKind::Attenuation,
                (_, Some(_)) => BlockKind::Delegation,
            },
            signed_by: signer.map(|k| k.to_string()),
            revocation_id: hex::encode(rid),
            datalog: t.print_block_source(index)?,
        });
    }
    let c = &chain.claims;
    Ok(Inspection {
        verified: keys.is_some(),
        root_key_id: layout.root_key_id,
        token_id: c.token_id.clone(),
        agent: c.agent.to_string(),
        agent_key: c.agent_key.map(|k| k.to_string()),
        rights: c
            .rights
            .iter()
            .map(|(action, p)| {
                let (resource, prefix) = match p {
                    ResourcePattern::Exact(r) => (r.to_string(), false),
                    ResourcePattern::Prefix(r) => (r.to_string(), true),
                };
                RightView {
                    action: action.clone(),
                    resource,
                    prefix,
                }
            })
            .collect(),
        audience: c.audience.clone(),
        issued_at: c.issued_at,
        expires_at: c.expires_at,
        on_behalf: c.on_behalf.clone(),
        chain: chain.agents().iter().map(ToString::to_string).collect(),
        holder: chain.holder().map(ToString::to_string),
        blocks,
    })
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = if self.verified {
            "verified"
        } else {
            "NOT VERIFIED (no key set given)"
        };
        writeln!(f, "signature:   {yes_no}")?;
        match self.root_key_id {
            Some(id) => writeln!(f, "root key id: {id}")?,
            None => writeln!(f, "root key id: none")?,
        }
        writeln!(f, "token id:    {}", self.token_id)?;
        writeln!(f, "agent:       {}", self.agent)?;
        if let Some(on) = &self.on_behalf {
            writeln!(f, "acts for:    {}", on.person)?;
            if !on.prior_actors.is_empty() {
                let earlier: Vec<&str> = on.prior_actors.iter().map(AgentId::as_str).collect();
                writeln!(f, "earlier:     {}", earlier.join(" -> "))?;
            }
        }
        for r in &self.rights {
            let what = if r.prefix {
                "every resource starting with "
            } else {
                ""
            };
            writeln!(f, "right:       {} on {what}{:?}", r.action, r.resource)?;
        }
        if let Some(a) = &self.audience {
            writeln!(f, "audience:    {a}")?;
        }
        if let Some(t) = self.issued_at {
            writeln!(f, "issued at:   {}", t.to_rfc3339())?;
        }
        writeln!(f, "expires at:  {}", self.expires_at.to_rfc3339())?;
        // The whole chain, as `Custody` prints it for a verified grant.
        let prior = self.on_behalf.iter().flat_map(|o| &o.prior_actors);
        let actors: Vec<&str> = prior
            .map(AgentId::as_str)
            .chain(self.chain.iter().map(String::as_str))
            .collect();
        match &self.on_behalf {
            Some(on) => writeln!(
                f,
                "chain:       for {} via {}",
                on.person,
                actors.join(" -> ")
            )?,
            None => writeln!(f, "chain:       {}", actors.join(" -> "))?,
        }
        match &self.holder {
            Some(h) => writeln!(f, "holder key:  {h}")?,
            None => writeln!(f, "holder key:  none (bearer token)")?,
        }
        for b in &self.blocks {
            let kind = match b.kind {
                BlockKind::Authority => "authority",
                BlockKind::Attenuation => "attenuation",
                BlockKind::Delegation => "delegation",
            };
            write!(f, "\nblock {} ({kind})", b.index)?;
            if let Some(k) = &b.signed_by {
                write!(f, ", signed by {k}")?;
            }
            writeln!(f, "\n  revocation id: {}", b.revocation_id)?;
            for line in b.datalog.lines() {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}
