//! The Redis layout shared by the issuer's Redis store and the verifier's
//! Redis follower and audit sink: every key, stream and field name, and the
//! encoding of each stream entry, defined once.
//!
//! Every key is `<prefix>{<tag>}:<name>`: the braces are a Redis Cluster
//! hash tag, so the keys one script or `MULTI` touches share a tag, and so a
//! hash slot. The tags:
//!
//! | tag | keys |
//! |---|---|
//! | `rev` | `revoked:<hex>` (string), `revocations` (stream) |
//! | `mint` | `replay:<key>` (string), `token:<id>` (string), `agent-tokens:<agent>` (sorted set) |
//! | `audit` | `audit` (stream), `tlog:leaves` (list), `tlog:nodes` (hash), `tlog:ingested` (string: the last stream id in the tree) |
//! | `agents` | `agent:<id>` (hash), `agents` (set) |
//! | `people` | `roles:<person>` (set), `consents:<person>` (set) |
//! | `approvals` | `approval:<id>` (string), `pending-agent:<agent>`, `pending-person:<person>`, `person-approvals:<person>`, `all-approvals` (sorted sets) |
//! | `meta` | `layout` (string: the layout version) |
//! | `code:<hash>` | `code` (string: JSON authorization code), `used` (string) |
//! | `fam:<id>` | `family` (string: JSON refresh family), `current` (string), `revoked` (string), `tokens` (list) |
//! | `people` | `remembered:<person>` (hash: client and resource -> JSON consent) |
//! | `budget` | `budget:<key>` (hash), `budget-res:<id>` (hash), `budget-idem:<key>/<idempotency key>` (string) |
//!
//! This module is strings and serde only: no I/O, no Redis client.

use serde::{Deserialize, Serialize};

use super::{AuditEvent, Cursor, Revocation};
use crate::token::Person;

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "tessera:";

/// The version of this layout, stored at [`RedisLayout::layout_version`].
/// Version 1 is the untagged layout of earlier releases (no version key).
pub const LAYOUT_VERSION: u32 = 2;

/// The field of a revocation stream entry: JSON of a [`Revocation`].
pub const REVOCATION_FIELD: &str = "revocation";

/// The field of an audit stream entry: JSON of an [`AuditEvent`].
pub const AUDIT_FIELD: &str = "event";

/// Why a key prefix was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The prefix holds `{` or `}`, which would change the keys' hash tags.
    #[error("the Redis key prefix {0:?} must not contain '{{' or '}}'")]
    Brace(String),
}

/// Why a stored entry could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The JSON did not decode.
    #[error("malformed entry: {0}")]
    Json(String),
    /// A stream id that is not `<ms>-<seq>`.
    #[error("unexpected stream id {0:?}")]
    StreamId(String),
}

/// The names of every Redis key under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisLayout {
    prefix: String,
}

impl Default for RedisLayout {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl RedisLayout {
    /// The layout under `prefix`. Refuses a prefix holding a brace.
    pub fn new(prefix: impl Into<String>) -> Result<Self, LayoutError> {
        let prefix = prefix.into();
        if prefix.contains(['{', '}']) {
            return Err(LayoutError::Brace(prefix));
        }
        Ok(Self { prefix })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, tag: &str, name: &str) -> String {
        format!("{}{{{tag}}}:{name}", self.prefix)
    }

    fn keyed(&self, tag: &str, kind: &str, id: &str) -> String {
        format!("{}{{{tag}}}:{kind}:{id}", self.prefix)
    }

    /// `P{rev}:revoked:<hex>`: string, JSON [`RevokedValue`], expires with
    /// the token.
    pub fn revoked(&self, revocation_id: &str) -> String {
        self.keyed("rev", "revoked", revocation_id)
    }

    /// `P{rev}:revocations`: the revocation stream (field
    /// [`REVOCATION_FIELD`]).
    pub fn revocations(&self) -> String {
        self.key("rev", "revocations")
    }

    /// `P{budget}:budget:<key>`: hash of one cumulative budget (`currency`,
    /// `limit`, `committed`, and `r:<reservation id>` = `<amount>:<expiry ms>`
    /// per pending reservation); expires after the token that declared it.
    pub fn budget(&self, key: &str) -> String {
        self.keyed("budget", "budget", key)
    }

    /// `P{budget}:budget-res:<id>`: hash of one reservation (`state`,
    /// `amount`, `exp`, `keys`), kept for a day after it is made.
    pub fn budget_reservation(&self, id: &str) -> String {
        self.keyed("budget", "budget-res", id)
    }

    /// `P{budget}:budget-idem:<key>/<idempotency key>`: string, the request's
    /// fingerprint and its outcome, kept for a day.
    pub fn budget_idempotency(&self, first_key: &str, idempotency_key: &str) -> String {
        self.keyed(
            "budget",
            "budget-idem",
            &format!("{first_key}/{idempotency_key}"),
        )
    }

    /// `P{mint}:replay:<key>`: string `1`, expires with the one-time key.
    pub fn replay(&self, key: &str) -> String {
        self.keyed("mint", "replay", key)
    }

    /// `P{mint}:token:<id>`: string, JSON of an issued token, expires with it.
    pub fn token(&self, token_id: &str) -> String {
        self.keyed("mint", "token", token_id)
    }

    /// `P{mint}:agent-tokens:<agent>`: sorted set of the agent's token ids
    /// by expiry (Unix ms).
    pub fn agent_tokens(&self, agent: &str) -> String {
        self.keyed("mint", "agent-tokens", agent)
    }

    /// `P{audit}:audit`: the audit stream (field [`AUDIT_FIELD`]), capped
    /// approximately.
    pub fn audit(&self) -> String {
        self.key("audit", "audit")
    }

    /// `P{audit}:tlog:leaves`: list of the audit tree's leaf bytes, by index.
    pub fn tlog_leaves(&self) -> String {
        self.key("audit", "tlog:leaves")
    }

    /// `P{audit}:tlog:ingested`: the id of the last audit stream entry that
    /// is a leaf of the audit tree.
    pub fn tlog_ingested(&self) -> String {
        self.key("audit", "tlog:ingested")
    }

    /// `P{audit}:tlog:nodes`: hash from `<level>:<index>` to the hex hash of
    /// that complete subtree of the audit tree.
    pub fn tlog_nodes(&self) -> String {
        self.key("audit", "tlog:nodes")
    }

    /// `P{agents}:agent:<id>`: hash of one agent's fields.
    pub fn agent(&self, id: &str) -> String {
        self.keyed("agents", "agent", id)
    }

    /// `P{agents}:agents`: set of every agent id.
    pub fn agents(&self) -> String {
        self.key("agents", "agents")
    }

    /// `P{approvals}:approval:<id>`: string, JSON of one request for a
    /// person's approval, expires when the record may be dropped.
    pub fn approval(&self, id: &str) -> String {
        self.keyed("approvals", "approval", id)
    }

    /// `P{approvals}:pending-agent:<agent>`: sorted set of the agent's
    /// pending approval ids by expiry (Unix ms).
    pub fn approvals_pending_agent(&self, agent: &str) -> String {
        self.keyed("approvals", "pending-agent", agent)
    }

    /// `P{approvals}:pending-person:<person>`: sorted set of the person's
    /// pending approval ids by expiry (Unix ms).
    pub fn approvals_pending_person(&self, person: &Person) -> String {
        self.keyed("approvals", "pending-person", &person_id(person))
    }

    /// `P{approvals}:person-approvals:<person>`: sorted set of every kept
    /// approval id of the person, by drop time (Unix ms).
    pub fn person_approvals(&self, person: &Person) -> String {
        self.keyed("approvals", "person-approvals", &person_id(person))
    }

    /// `P{approvals}:all-approvals`: sorted set of every kept approval id,
    /// by drop time (Unix ms), for the operators' list.
    pub fn all_approvals(&self) -> String {
        self.key("approvals", "all-approvals")
    }

    /// `P{people}:roles:<person>`: set of the role names given to one
    /// person explicitly. `<person>` is [`person_id`].
    pub fn person_roles(&self, person: &Person) -> String {
        self.keyed("people", "roles", &person_id(person))
    }

    /// `P{people}:consents:<person>`: set of the agent ids one person has a
    /// standing consent for. Same tag as [`person_roles`](Self::person_roles),
    /// so both are read in one round trip, on one node of a cluster.
    pub fn person_consents(&self, person: &Person) -> String {
        self.keyed("people", "consents", &person_id(person))
    }

    /// `P{code:<hash>}:code`: one authorization code (JSON), by the hash of
    /// the code; expires a while after the code does.
    pub fn auth_code(&self, code_hash: &str) -> String {
        self.key(&format!("code:{code_hash}"), "code")
    }

    /// `P{code:<hash>}:used`: set when the code is redeemed (same tag as
    /// [`auth_code`](Self::auth_code): one script reads and sets both).
    pub fn auth_code_used(&self, code_hash: &str) -> String {
        self.key(&format!("code:{code_hash}"), "used")
    }

    /// `P{fam:<id>}:<part>`: a refresh family's `family` (JSON record),
    /// `current` (hash of the valid refresh token), `revoked` (flag) and
    /// `tokens` (list of JSON access-token entries). One tag per family.
    pub fn refresh_family(&self, family_id: &str, part: &str) -> String {
        self.key(&format!("fam:{family_id}"), part)
    }

    /// `P{people}:remembered:<person>`: hash of the person's remembered
    /// consents, field `<client_id>\n<resource>`, value JSON.
    pub fn remembered_consents(&self, person: &Person) -> String {
        self.keyed("people", "remembered", &person_id(person))
    }

    /// `P{meta}:layout`: the layout version ([`LAYOUT_VERSION`]).
    pub fn layout_version(&self) -> String {
        self.key("meta", "layout")
    }

    /// `P{meta}:migrating`: lock held while one issuer migrates the
    /// untagged layout.
    pub fn migration_lock(&self) -> String {
        self.key("meta", "migrating")
    }

    /// The untagged names of the same keys, as earlier releases wrote them.
    pub fn legacy(&self) -> LegacyLayout<'_> {
        LegacyLayout { layout: self }
    }
}

/// The untagged key names of layout version 1 (`P revoked:<hex>`, …).
#[derive(Clone, Copy, Debug)]
pub struct LegacyLayout<'a> {
    layout: &'a RedisLayout,
}

impl LegacyLayout<'_> {
    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.layout.prefix)
    }

    /// `P revocations`.
    pub fn revocations(&self) -> String {
        self.name("revocations")
    }

    /// `P audit`.
    pub fn audit(&self) -> String {
        self.name("audit")
    }

    /// `P agents`.
    pub fn agents(&self) -> String {
        self.name("agents")
    }

    /// The legacy prefix of keys of one kind (`revoked`, `agent`, `token`,
    /// `agent-tokens`, `replay`), followed by `:`.
    pub fn kind_prefix(&self, kind: &str) -> String {
        format!("{}{kind}:", self.layout.prefix)
    }
}

/// A person in a key name: `<bytes of the issuer>:<issuer>:<subject>`. The
/// length makes it unambiguous whatever the issuer and subject contain, so
/// the same subject at two IdPs never shares a key.
pub fn person_id(person: &Person) -> String {
    format!(
        "{}:{}:{}",
        person.issuer().len(),
        person.issuer(),
        person.subject()
    )
}

/// The value of a revoked key: the cursor of its (first) stream entry and
/// the revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedValue {
    /// The raw stream id of the revocation's feed entry (`<ms>-<seq>`).
    pub cursor: String,
    /// The revocation.
    pub revocation: Revocation,
}

/// JSON of a revocation, the [`REVOCATION_FIELD`] of a stream entry.
pub fn encode_revocation(revocation: &Revocation) -> Result<String, EntryError> {
    serde_json::to_string(revocation).map_err(|e| EntryError::Json(e.to_string()))
}

/// Reads the [`REVOCATION_FIELD`] of a stream entry.
pub fn decode_revocation(text: &str) -> Result<Revocation, EntryError> {
    serde_json::from_str(text).map_err(|e| EntryError::Json(e.to_string()))
}

/// JSON of an audit event, the [`AUDIT_FIELD`] of a stream entry.
pub fn encode_audit(event: &AuditEvent) -> Result<String, EntryError> {
    serde_json::to_string(event).map_err(|e| EntryError::Json(e.to_string()))
}

/// Reads the [`AUDIT_FIELD`] of a stream entry.
pub fn decode_audit(text: &str) -> Result<AuditEvent, EntryError> {
    serde_json::from_str(text).map_err(|e| EntryError::Json(e.to_string()))
}

/// The value of a revoked key, split around its stream id, which only the
/// script writing it knows: the script writes `before .. id .. after`.
///
/// `revocation_json` is the output of [`encode_revocation`]. The result,
/// joined around a stream id, is exactly the JSON of a [`RevokedValue`].
pub fn revoked_value_parts(revocation_json: &str) -> (String, String) {
    (
        r#"{"cursor":""#.to_owned(),
        format!(r#"","revocation":{revocation_json}}}"#),
    )
}

/// Reads the value of a revoked key.
pub fn decode_revoked_value(text: &str) -> Result<RevokedValue, EntryError> {
    serde_json::from_str(text).map_err(|e| EntryError::Json(e.to_string()))
}

/// The arguments capping a stream at about `max_len` entries, to put right
/// after `XADD <stream>`: `MAXLEN ~ <max_len>`.
pub fn max_len_args(max_len: usize) -> [String; 3] {
    ["MAXLEN".to_owned(), "~".to_owned(), max_len.to_string()]
}

/// Parses a stream id `<ms>-<seq>` (zero-padded or not) into its numbers.
pub fn parse_stream_id(text: &str) -> Option<(u64, u64)> {
    let (ms, seq) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The cursor of a stream id: zero-padded, so that text order is stream
/// order.
pub fn cursor_of_stream_id(id: &str) -> Result<Cursor, EntryError> {
    let (ms, seq) = parse_stream_id(id).ok_or_else(|| EntryError::StreamId(id.to_owned()))?;
    Ok(Cursor::new(format!("{ms:020}-{seq:020}")))
}

/// The stream id a cursor stands for, or `None` if it is not one.
pub fn stream_id_of_cursor(cursor: &Cursor) -> Option<String> {
    let (ms, seq) = parse_stream_id(cursor.as_str())?;
    Some(format!("{ms}-{seq}"))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn revocation() -> Revocation {
        Revocation {
            revocation_id: "ab01".to_owned(),
            token_id: Some("t\"1".to_owned()),
            agent: None,
            reason: "a \"quoted\" reason }".to_owned(),
            revoked_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            expires_at: Utc.timestamp_opt(1_700_000_600, 5_000).unwrap(),
        }
    }

    #[test]
    fn keys_share_a_tag_per_script() {
        let layout = RedisLayout::new("t:").unwrap();
        assert_eq!(layout.revoked("ab"), "t:{rev}:revoked:ab");
        assert_eq!(layout.revocations(), "t:{rev}:revocations");
        assert_eq!(layout.replay("k"), "t:{mint}:replay:k");
        assert_eq!(layout.token("i"), "t:{mint}:token:i");
        assert_eq!(layout.agent_tokens("a"), "t:{mint}:agent-tokens:a");
        assert_eq!(layout.audit(), "t:{audit}:audit");
        assert_eq!(layout.agent("a"), "t:{agents}:agent:a");
        assert_eq!(layout.agents(), "t:{agents}:agents");
        let alice = Person::parse("https://idp.example", "alice").unwrap();
        assert_eq!(
            layout.person_roles(&alice),
            "t:{people}:roles:19:https://idp.example:alice"
        );
        assert_eq!(
            layout.person_consents(&alice),
            "t:{people}:consents:19:https://idp.example:alice"
        );
        // An issuer that ends where another begins cannot collide.
        let a = Person::parse("https://a.example/x", "y").unwrap();
        let b = Person::parse("https://a.example/x:y", "z").unwrap();
        assert_ne!(person_id(&a), person_id(&b));
        assert_eq!(layout.legacy().revocations(), "t:revocations");
        assert_eq!(layout.legacy().kind_prefix("revoked"), "t:revoked:");
        // A brace in a user-given id does not move the key: the first
        // `{...}` wins, and it is ours.
        assert_eq!(layout.revoked("{x}"), "t:{rev}:revoked:{x}");
    }

    #[test]
    fn braces_in_the_prefix_are_refused() {
        assert!(RedisLayout::new("a{b").is_err());
        assert!(RedisLayout::new("a}b").is_err());
        assert_eq!(RedisLayout::default().prefix(), DEFAULT_PREFIX);
    }

    #[test]
    fn revoked_value_parts_join_into_its_json() {
        let revocation = revocation();
        let json = encode_revocation(&revocation).unwrap();
        let (before, after) = revoked_value_parts(&json);
        let value = decode_revoked_value(&format!("{before}1700000000000-3{after}")).unwrap();
        assert_eq!(value.cursor, "1700000000000-3");
        assert_eq!(value.revocation, revocation);
        assert!(decode_revoked_value("{").is_err());
    }

    #[test]
    fn cursors_round_trip_stream_ids() {
        let cursor = cursor_of_stream_id("17-3").unwrap();
        assert_eq!(cursor.as_str(), "00000000000000000017-00000000000000000003");
        assert_eq!(stream_id_of_cursor(&cursor).as_deref(), Some("17-3"));
        assert!(cursor_of_stream_id("17").is_err());
        assert!(stream_id_of_cursor(&Cursor::new("x-1")).is_none());
        assert_eq!(max_len_args(5), ["MAXLEN", "~", "5"]);
    }
}
