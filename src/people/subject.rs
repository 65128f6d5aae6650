//! Reads whom a Tessera token acts for: `on_behalf_of(<issuer>, <subject>)`
//! and `prior_actor(<position>, <agent>)`, from the authority block only
//! (an authorizer query sees the authority block's facts, never those of
//! attenuation or delegation blocks, so no holder can add or change them).
//! Pure: the token's bytes and the root keys come in.

use biscuit_auth::Biscuit;

use crate::token::{AgentId, KeySet, OnBehalf, Person};

/// Most prior actors a token may name.
pub const MAX_PRIOR_ACTORS: usize = 8;

/// Why the person could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The signatures do not verify with the keys given.
    #[error("the token does not verify with this issuer's keys")]
    Unverified,
    /// The authority block names more than one person.
    #[error("the token names more than one person")]
    ManyPeople,
    /// A fact has the wrong shape or value.
    #[error("the token's person facts are invalid: {0}")]
    Invalid(&'static str),
}

/// The person and earlier actors of a token, verified with `keys`;
/// `None` when the token acts for no one.
pub fn on_behalf(bytes: &[u8], keys: &KeySet) -> Result<Option<OnBehalf>, SubjectError> {
    let biscuit = Biscuit::from(bytes, keys).map_err(|_| SubjectError::Unverified)?;
    let mut authorizer = biscuit
        .authorizer()
        .map_err(|_| SubjectError::Invalid("the token cannot be read"))?;
    let people: Vec<(String, String)> = authorizer
        .query("person($i, $s) <- on_behalf_of($i, $s)")
        .map_err(|_| SubjectError::Invalid("on_behalf_of"))?;
    let person = match people.as_slice() {
        [] => return Ok(None),
        [(issuer, subject)] => Person::parse(issuer, subject)
            .map_err(|_| SubjectError::Invalid("on_behalf_of names no valid person"))?,
        _ => return Err(SubjectError::ManyPeople),
    };
    let mut actors: Vec<(i64, String)> = authorizer
        .query("actor($p, $a) <- prior_actor($p, $a)")
        .map_err(|_| SubjectError::Invalid("prior_actor"))?;
    if actors.len() > MAX_PRIOR_ACTORS {
        return Err(SubjectError::Invalid("too many prior actors"));
    }
    actors.sort();
    let mut prior_actors = Vec::with_capacity(actors.len());
    for (expected, (position, agent)) in actors.into_iter().enumerate() {
        if usize::try_from(position).ok() != Some(expected) {
            return Err(SubjectError::Invalid(
                "prior_actor positions are not 0, 1, 2, ...",
            ));
        }
        prior_actors
            .push(AgentId::parse(&agent).map_err(|_| SubjectError::Invalid("prior_actor agent"))?);
    }
    Ok(Some(OnBehalf {
        person,
        prior_actors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{mint, Action, Capability, Lifetime, Limits, ResourcePattern, RootKeyPair};
    use biscuit_auth::KeyPair;

    fn fresh_root() -> (RootKeyPair, KeySet) {
        let root = RootKeyPair::new(1, KeyPair::new());
        let keys = KeySet::single(1, root.keypair.public());
        (root, keys)
    }

    fn cap(on_behalf: Option<OnBehalf>) -> Capability {
        Capability {
            agent: AgentId::parse("agent://acme/bot").unwrap(),
            action: Action::parse("docs:read").unwrap(),
            resource: ResourcePattern::parse("docs/*").unwrap(),
            audience: None,
            lifetime: Lifetime::parse("5m").unwrap(),
            holder_key: None,
            on_behalf,
        }
    }

    #[test]
    fn the_person_and_actors_are_read_back_and_a_plain_token_acts_for_no_one() {
        let (root, keys) = fresh_root();
        let now = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let on = OnBehalf {
            person: Person::parse("https://idp.example", "alice").unwrap(),
            prior_actors: vec![
                AgentId::parse("agent://acme/a").unwrap(),
                AgentId::parse("agent://acme/b").unwrap(),
            ],
        };
        let t = mint(&cap(Some(on.clone())), &root, now).unwrap();
        let bytes = crate::token::decode(&t.token, &Limits::default()).unwrap();
        assert_eq!(on_behalf(&bytes, &keys).unwrap(), Some(on));
        let plain = mint(&cap(None), &root, now).unwrap();
        let bytes = crate::token::decode(&plain.token, &Limits::default()).unwrap();
        assert_eq!(on_behalf(&bytes, &keys).unwrap(), None);
        let other = fresh_root().1;
        assert_eq!(on_behalf(&bytes, &other), Err(SubjectError::Unverified));
    }
}
