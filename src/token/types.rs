//! Domain types that parse their input once.
//!
//! Every value that ends up in a token goes through one of these types, so the
//! token builder never sees an unchecked string. They are carried into Datalog
//! as parameters, never formatted into source text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use biscuit_auth::PublicKey;
use serde::{Deserialize, Serialize};

/// Why a value was refused by one of the domain types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// An agent identifier that is not an accepted absolute URI.
    #[error("invalid agent id: {0}")]
    AgentId(&'static str),
    /// An action name outside the allowed alphabet or length.
    #[error("invalid action: {0}")]
    Action(&'static str),
    /// A resource name that is empty or too long.
    #[error("invalid resource: {0}")]
    Resource(&'static str),
    /// An audience that is not an absolute URI.
    #[error("invalid audience: {0}")]
    Audience(&'static str),
    /// A lifetime that is zero, below the minimum or above the maximum.
    #[error("invalid lifetime: {0}")]
    Lifetime(String),
    /// A public key that is not `ed25519/<64 hex digits>`.
    #[error("invalid public key: {0}")]
    PublicKey(String),
    /// A person's issuer or subject that is empty, too long or has a control character.
    #[error("invalid person: {0}")]
    Person(&'static str),
}

const AGENT_ID_MAX: usize = 255;
const ACTION_MAX: usize = 128;
const RESOURCE_MAX: usize = 1024;
const AUDIENCE_MAX: usize = 2048;

/// Characters no identifier may contain: whitespace, quotes, controls.
fn has_forbidden_char(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '`' | '\\'))
}

/// Checks `scheme://rest` where rest is non-empty; returns the scheme.
fn absolute_uri(s: &str) -> Option<&str> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (scheme_ok && !rest.is_empty()).then_some(scheme)
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The value as it appears in the token.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// The prefix of the agent ids the issuer keeps for itself.
pub const RESERVED_AGENT_PREFIX: &str = "agent://tessera/";

/// An agent identity: an absolute URI with scheme `agent`, `spiffe` or `https`.
///
/// ```
/// # use tessera::token::AgentId;
/// assert!(AgentId::parse("agent://acme/billing-bot").is_ok());
/// assert!(AgentId::parse("agent://acme/billing bot").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Parses and validates an agent URI.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.is_empty() {
            return Err(InvalidInput::AgentId("empty"));
        }
        if s.len() > AGENT_ID_MAX {
            return Err(InvalidInput::AgentId("longer than 255 bytes"));
        }
        if has_forbidden_char(s) {
            return Err(InvalidInput::AgentId(
                "contains whitespace, a quote, a backslash or a control character",
            ));
        }
        match absolute_uri(s) {
            Some("agent" | "spiffe" | "https") => Ok(Self(s.to_owned())),
            Some(_) => Err(InvalidInput::AgentId(
                "scheme must be agent://, spiffe:// or https://",
            )),
            None => Err(InvalidInput::AgentId("not an absolute URI")),
        }
    }

    /// Whether the id lies under `agent://tessera/` (any case), which the
    /// issuer keeps for its own agents (the operator, feed followers): no
    /// agent registers one, and no delegation may name one.
    pub fn is_reserved(&self) -> bool {
        let prefix = RESERVED_AGENT_PREFIX.len();
        self.0
            .get(..prefix)
            .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_AGENT_PREFIX))
    }
}
string_newtype!(AgentId);

/// An action name such as `orders:create`: ASCII letters, digits and `._:/-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action(String);

impl Action {
    /// Parses and validates an action name.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.is_empty() {
            return Err(InvalidInput::Action("empty"));
        }
        if s.len() > ACTION_MAX {
            return Err(InvalidInput::Action("longer than 128 bytes"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
        {
            return Err(InvalidInput::Action(
                "only letters, digits and . _ : / - are allowed",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}
string_newtype!(Action);

/// A resource name: any non-empty Unicode string of at most 1,024 bytes.
///
/// Quotes, newlines and Datalog syntax are ordinary characters here: the value
/// only ever reaches Datalog as a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Resource(String);

impl Resource {
    /// Parses and validates a resource name.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.is_empty() {
            return Err(InvalidInput::Resource("empty"));
        }
        if s.len() > RESOURCE_MAX {
            return Err(InvalidInput::Resource("longer than 1024 bytes"));
        }
        Ok(Self(s.to_owned()))
    }
}
string_newtype!(Resource);

/// Which resources a right covers: one exact name, or every name that starts
/// with a prefix (written with a trailing `*`, as in `docs/team-a/*`).
///
/// An exact name that itself ends in `*` is written with the star escaped:
/// `reports/\*` is the one resource `reports/*`. A prefix may not end in a
/// backslash (it would read as that escape). `*` alone (every resource) is
/// refused, so a grant always names something.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ResourcePattern {
    /// Exactly this resource.
    Exact(Resource),
    /// Every resource whose name starts with this prefix.
    Prefix(Resource),
}

impl ResourcePattern {
    /// Parses `name` (exact), `prefix*` (prefix) or `name\*` (an exact name
    /// ending in `*`).
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if let Some(name) = s.strip_suffix("\\*") {
            return Ok(Self::Exact(Resource::parse(&format!("{name}*"))?));
        }
        match s.strip_suffix('*') {
            Some("") => Err(InvalidInput::Resource(
                "a bare `*` would cover every resource; name a prefix",
            )),
            Some(prefix) if prefix.ends_with('\\') => Err(InvalidInput::Resource(
                "a prefix may not end in a backslash",
            )),
            Some(prefix) => Ok(Self::Prefix(Resource::parse(prefix)?)),
            None => Ok(Self::Exact(Resource::parse(s)?)),
        }
    }

    /// Whether `resource` is covered by this pattern.
    pub fn matches(&self, resource: &str) -> bool {
        match self {
            Self::Exact(r) => r.as_str() == resource,
            Self::Prefix(p) => resource.starts_with(p.as_str()),
        }
    }

    /// Whether every resource covered by `other` is covered by `self`.
    pub fn covers(&self, other: &ResourcePattern) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Exact(_), Self::Prefix(_)) => false,
            (Self::Prefix(p), Self::Exact(r)) | (Self::Prefix(p), Self::Prefix(r)) => {
                r.as_str().starts_with(p.as_str())
            }
        }
    }
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(r) => match r.as_str().strip_suffix('*') {
                Some(head) => write!(f, "{head}\\*"),
                None => f.write_str(r.as_str()),
            },
            Self::Prefix(p) => write!(f, "{}*", p.as_str()),
        }
    }
}

impl FromStr for ResourcePattern {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ResourcePattern {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ResourcePattern> for String {
    fn from(p: ResourcePattern) -> String {
        p.to_string()
    }
}

/// The canonical URI of a tool server, used as a token's audience and as the
/// verifier's own `service` fact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Audience(String);

impl Audience {
    /// Parses and validates an audience URI.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.len() > AUDIENCE_MAX {
            return Err(InvalidInput::Audience("longer than 2048 bytes"));
        }
        if has_forbidden_char(s) {
            return Err(InvalidInput::Audience(
                "contains whitespace, a quote, a backslash or a control character",
            ));
        }
        if absolute_uri(s).is_none() {
            return Err(InvalidInput::Audience("not an absolute URI"));
        }
        Ok(Self(s.to_owned()))
    }
}
string_newtype!(Audience);

/// Longest person issuer URL or subject accepted, in bytes.
const PERSON_PART_MAX: usize = 255;

/// A person, as Tessera names them: the issuer URL of the identity provider
/// they log in at, and their subject (`sub`) there. Two IdPs may use the same
/// subject for different people, so neither part alone is an identity.
///
/// ```
/// # use tessera::token::Person;
/// let alice = Person::parse("https://login.acme.example", "alice").unwrap();
/// assert_eq!(alice.to_string(), "alice at https://login.acme.example");
/// assert!(Person::parse("https://login.acme.example", "").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Person {
    issuer: String,
    subject: String,
}

impl Person {
    /// Checks both parts: the issuer an absolute URI, the subject non-empty,
    /// each at most 255 bytes without control characters.
    pub fn parse(issuer: &str, subject: &str) -> Result<Self, InvalidInput> {
        for (part, what) in [(issuer, "issuer"), (subject, "subject")] {
            if part.is_empty() {
                return Err(InvalidInput::Person(if what == "issuer" {
                    "empty issuer"
                } else {
                    "empty subject"
                }));
            }
            if part.len() > PERSON_PART_MAX {
                return Err(InvalidInput::Person(
                    "issuer or subject longer than 255 bytes",
                ));
            }
            if part.chars().any(char::is_control) {
                return Err(InvalidInput::Person(
                    "issuer or subject contains a control character",
                ));
            }
        }
        if absolute_uri(issuer).is_none() {
            return Err(InvalidInput::Person("issuer is not an absolute URI"));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        })
    }

    /// The identity provider's issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The subject at that identity provider.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.subject, self.issuer)
    }
}

/// Most earlier actors a token may name: minting more is refused, and a
/// token naming more is malformed.
pub const MAX_PRIOR_ACTORS: usize = 8;

/// Whom a token acts for: the person, and the agents that held a token for
/// them before this one was exchanged for it (oldest first; empty for a
/// token minted from the person's own ID token or assertion).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OnBehalf {
    /// The person the token acts for.
    pub person: Person,
    /// Earlier actors, oldest first (`prior_actor(0, ...)` is the first).
    pub prior_actors: Vec<AgentId>,
}

/// How long a minted token lives: at least [`Lifetime::MIN`], at most
/// [`Lifetime::MAX`]; an issuer may set a lower ceiling per agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lifetime(Duration);

impl Lifetime {
    /// The shortest lifetime a token may have.
    pub const MIN: Duration = Duration::from_secs(1);
    /// The longest lifetime a token may have: Tessera tokens live minutes.
    pub const MAX: Duration = Duration::from_secs(24 * 3600);

    /// Accepts a whole number of seconds within [`Lifetime::MIN`]..=[`Lifetime::MAX`].
    pub fn new(d: Duration) -> Result<Self, InvalidInput> {
        if d.subsec_nanos() != 0 {
            return Err(InvalidInput::Lifetime(
                "must be a whole number of seconds".into(),
            ));
        }
        if d < Self::MIN {
            return Err(InvalidInput::Lifetime("must be at least 1s".into()));
        }
        if d > Self::MAX {
            return Err(InvalidInput::Lifetime(format!(
                "{}s is beyond the maximum of {}s",
                d.as_secs(),
                Self::MAX.as_secs()
            )));
        }
        Ok(Self(d))
    }

    /// Parses `90`, `90s`, `5m`, `2h` or `1d`.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        Self::new(parse_duration(s)?)
    }

    /// The duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Lifetime {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Parses a duration written as a whole number with an optional unit
/// (`s`, `m`, `h`, `d`; seconds when none).
pub fn parse_duration(s: &str) -> Result<Duration, InvalidInput> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| InvalidInput::Lifetime(format!("`{s}` is not a duration like 30s or 5m")))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(InvalidInput::Lifetime(format!(
                "unknown unit `{unit}`; use s, m, h or d"
            )))
        }
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| InvalidInput::Lifetime("too large".into()))
}

/// Serde for a duration written as [`parse_duration`] reads it (`30s`,
/// `5m`, `1h`, `2d`) or as a whole number of seconds, and written back as
/// `<seconds>s`: `#[serde(with = "tessera::token::duration_text")]`.
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `<seconds>s`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }

    /// Reads `30s`, `5m`, `1h`, `2d`, or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => super::parse_duration(&s).map_err(serde::de::Error::custom),
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
        }
    }
}

/// Parses a public key written `ed25519/<64 hex digits>`.
///
/// Only Ed25519 is accepted for agent and holder keys.
pub fn parse_public_key(s: &str) -> Result<PublicKey, InvalidInput> {
    let hex = s
        .strip_prefix("ed25519/")
        .ok_or_else(|| InvalidInput::PublicKey("expected `ed25519/<hex>`".into()))?;
    if hex.len() != 64 {
        return Err(InvalidInput::PublicKey(
            "an Ed25519 key is 64 hex digits".into(),
        ));
    }
    PublicKey::from_bytes_hex(hex, biscuit_auth::Algorithm::Ed25519)
        .map_err(|e| InvalidInput::PublicKey(e.to_string()))
}

/// Formats a public key as `ed25519/<hex>` (or `secp256r1/<hex>`).
pub fn format_public_key(key: &PublicKey) -> String {
    key.to_string()
}

/// An agent's Ed25519 public key as agent records keep it, written
/// `ed25519/<64 hex digits>` (JSON and Redis hold that text).
///
/// Reading it checks the form and yields the 32 key bytes; it does not
/// decompress the curve point, which is the costly half of turning the key
/// into a verifying key. Registration checks the point
/// ([`AgentKey::from_public_key`] takes a key that [`parse_public_key`] or a
/// JWK already decoded), and the issuer decodes each key once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentKey([u8; 32]);

impl AgentKey {
    /// Parses `ed25519/<64 hex digits>`, checking its form only.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let hex = s
            .strip_prefix("ed25519/")
            .ok_or_else(|| InvalidInput::PublicKey("expected `ed25519/<hex>`".into()))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes)
            .map_err(|_| InvalidInput::PublicKey("an Ed25519 key is 64 hex digits".into()))?;
        Ok(Self(bytes))
    }

    /// The key of a decoded public key; only Ed25519 is accepted.
    pub fn from_public_key(key: &PublicKey) -> Result<Self, InvalidInput> {
        if key.algorithm() != biscuit_auth::format::schema::public_key::Algorithm::Ed25519 {
            return Err(InvalidInput::PublicKey(
                "only Ed25519 keys are accepted".into(),
            ));
        }
        key.to_bytes()
            .try_into()
            .map(Self)
            .map_err(|_| InvalidInput::PublicKey("an Ed25519 key is 32 bytes".into()))
    }

    /// The 32 key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519/{}", hex::encode(self.0))
    }
}

impl FromStr for AgentKey {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AgentKey {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AgentKey> for String {
    fn from(k: AgentKey) -> String {
        k.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_need_a_known_scheme_and_no_quotes_or_spaces() {
        for ok in [
            "agent://acme/bot",
            "spiffe://acme.org/ns/prod/sa/bot",
            "https://agents.acme.org/bot",
        ] {
            assert!(AgentId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "agent://acme/b ot",
            "agent://acme/\"bot",
            "agent://a\nb",
            "http://acme/bot",
            "agent:/acme",
            "agent://",
            "bot",
        ] {
            assert!(AgentId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(AgentId::parse(&format!("agent://{}", "a".repeat(247))).is_ok());
        assert!(AgentId::parse(&format!("agent://{}", "a".repeat(248))).is_err());
    }

    #[test]
    fn ids_under_agent_tessera_are_reserved_in_any_case() {
        for reserved in [
            "agent://tessera/operator",
            "agent://Tessera/x",
            "agent://TESSERA/feed",
        ] {
            assert!(
                AgentId::parse(reserved).unwrap().is_reserved(),
                "{reserved}"
            );
        }
        for free in [
            "agent://tessera",
            "agent://tessera.example/x",
            "agent://acme/tessera/x",
            "https://tessera/x",
        ] {
            assert!(!AgentId::parse(free).unwrap().is_reserved(), "{free}");
        }
    }

    #[test]
    fn actions_allow_only_their_alphabet() {
        assert!(Action::parse("orders:create").is_ok());
        assert!(Action::parse("docs.read/v2-beta_1").is_ok());
        for bad in ["", "orders create", "orders\"", "ordérs", "a\n"] {
            assert!(Action::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Action::parse(&"a".repeat(128)).is_ok());
        assert!(Action::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn resources_take_any_unicode_up_to_the_limit() {
        assert!(Resource::parse("\"); right(\"admin").is_ok());
        assert!(Resource::parse("line\nbreak ünïcødé 🦀").is_ok());
        assert!(Resource::parse("").is_err());
        assert!(Resource::parse(&"é".repeat(512)).is_ok());
        assert!(Resource::parse(&"é".repeat(513)).is_err());
    }

    #[test]
    fn patterns_distinguish_exact_and_prefix() {
        let p = ResourcePattern::parse("docs/team-a/*").unwrap();
        assert!(p.matches("docs/team-a/x"));
        assert!(!p.matches("docs/team-b/x"));
        assert!(ResourcePattern::parse("*").is_err());
        let e = ResourcePattern::parse("order:1").unwrap();
        assert!(e.matches("order:1") && !e.matches("order:12"));
        assert!(p.covers(&ResourcePattern::parse("docs/team-a/sub/*").unwrap()));
        assert!(!p.covers(&ResourcePattern::parse("docs/*").unwrap()));
        assert!(!e.covers(&ResourcePattern::parse("order:1*").unwrap()));
    }

    #[test]
    fn an_exact_name_ending_in_a_star_is_written_escaped_and_round_trips() {
        let e = ResourcePattern::parse("reports/\\*").unwrap();
        assert_eq!(
            e,
            ResourcePattern::Exact(Resource::parse("reports/*").unwrap())
        );
        assert!(e.matches("reports/*") && !e.matches("reports/x"));
        assert_eq!(e.to_string(), "reports/\\*");
        for text in ["reports/\\*", "reports/*", "a\\b", "x"] {
            let p = ResourcePattern::parse(text).unwrap();
            assert_eq!(ResourcePattern::parse(&p.to_string()).unwrap(), p, "{text}");
        }
        assert!(ResourcePattern::parse("a\\\\*").is_ok()); // exact `a\*`
        assert!(ResourcePattern::parse("ab\\ *").is_ok());
        assert!(ResourcePattern::parse("ab\\*").is_ok());
    }

    #[test]
    fn lifetimes_are_bounded() {
        assert_eq!(
            Lifetime::parse("5m").unwrap().duration(),
            Duration::from_secs(300)
        );
        assert!(Lifetime::parse("0s").is_err());
        assert!(Lifetime::parse("25h").is_err());
        assert!(Lifetime::parse("1d").is_ok());
        assert!(Lifetime::parse("5 minutes").is_err());
        assert!(Lifetime::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn agent_keys_read_and_write_the_text_a_biscuit_key_prints() {
        let k = biscuit_auth::KeyPair::new().public();
        let text = format_public_key(&k);
        let typed = AgentKey::from_public_key(&k).unwrap();
        assert_eq!(typed.to_string(), text);
        assert_eq!(AgentKey::parse(&text).unwrap(), typed);
        assert_eq!(typed.bytes().as_slice(), k.to_bytes().as_slice());
        let json = serde_json::to_string(&typed).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<AgentKey>(&json).unwrap(), typed);
        for bad in ["ed25519/zz", "", "p256/00", &text[..text.len() - 2]] {
            assert!(AgentKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<AgentKey>("\"ed25519/zz\"").is_err());
    }

    #[test]
    fn public_keys_must_be_ed25519_hex() {
        let k = biscuit_auth::KeyPair::new().public();
        let s = format_public_key(&k);
        assert_eq!(parse_public_key(&s).unwrap(), k);
        assert!(parse_public_key("ed25519/zz").is_err());
        assert!(parse_public_key(&s.replace("ed25519/", "secp256r1/")).is_err());
    }
}
