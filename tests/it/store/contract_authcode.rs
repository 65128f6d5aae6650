//! The contract of `AuthCodeStore` (codes, refresh families, remembered
//! consents), run on every backend through `contract_suite!`.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tessera::store::authcode::{
    secret_hash, AuthCode, CodeTake, FamilyToken, RefreshFamily, RememberedConsent, Rotation,
    MAX_CONSENT_FAMILIES, MAX_FAMILY_TOKENS, MAX_REMEMBERED_PER_PERSON,
};
use tessera::store::{StoreError, Stores};
use tessera::token::{Action, Audience, Person, ResourcePattern};

use super::contract::wall_clock;

fn alice() -> Person {
    Person::parse("https://idp.example", "alice").unwrap()
}

fn code(secret: &str, now: DateTime<Utc>) -> AuthCode {
    AuthCode {
        code_hash: secret_hash(secret),
        client_id: "https://client.example/meta.json".into(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        resource: Audience::parse("https://mcp.example/mcp").unwrap(),
        pattern: ResourcePattern::parse("orders/*").unwrap(),
        scopes: vec![
            Action::parse("get_order").unwrap(),
            Action::parse("list_orders").unwrap(),
        ],
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        person: alice(),
        family_id: format!("fam-{secret}"),
        expires_at: now + TimeDelta::seconds(60),
        // Kept by every store (the round trips below compare whole records).
        confidential: true,
    }
}

fn family(id: &str, refresh: &str, now: DateTime<Utc>) -> RefreshFamily {
    let c = code(id, now);
    RefreshFamily {
        id: id.into(),
        client_id: c.client_id,
        person: c.person,
        resource: c.resource,
        pattern: c.pattern,
        scopes: c.scopes,
        refresh_hash: secret_hash(refresh),
        jkt: None,
        revoked: false,
        tokens: Vec::new(),
        expires_at: now + TimeDelta::seconds(600),
        confidential: c.confidential,
    }
}

fn minted(n: usize, now: DateTime<Utc>) -> FamilyToken {
    FamilyToken {
        token_id: format!("tok-{n}"),
        revocation_id: format!("{n:064x}"),
        expires_at: now + TimeDelta::seconds(300),
    }
}

pub async fn an_authorization_code_is_taken_once_and_reported_spent_after(stores: &Stores) {
    let now = wall_clock();
    let s = &stores.authcodes;
    let c = code("c1", now);
    s.put_code(&c, now).await.unwrap();
    assert_eq!(
        s.take_code(&secret_hash("nope"), now).await.unwrap(),
        CodeTake::Unknown
    );
    assert_eq!(
        s.take_code(&c.code_hash, now).await.unwrap(),
        CodeTake::Fresh(c.clone())
    );
    assert_eq!(
        s.take_code(&c.code_hash, now).await.unwrap(),
        CodeTake::Spent(c.clone())
    );
}

pub async fn exactly_one_of_16_concurrent_takes_of_a_code_is_fresh(stores: &Stores) {
    let now = wall_clock();
    let c = code("c2", now);
    stores.authcodes.put_code(&c, now).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&stores.authcodes);
        let h = c.code_hash.clone();
        tasks.push(tokio::spawn(
            async move { s.take_code(&h, now).await.unwrap() },
        ));
    }
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            CodeTake::Fresh(_) => fresh += 1,
            CodeTake::Spent(_) => {}
            CodeTake::Unknown => panic!("the code vanished"),
        }
    }
    assert_eq!(fresh, 1);
}

pub async fn a_refresh_family_rotates_and_a_stale_token_revokes_it(stores: &Stores) {
    let now = wall_clock();
    let s = &stores.authcodes;
    let f = family("f1", "r1", now);
    s.start_family(&f, now).await.unwrap();
    s.add_family_token("f1", &minted(1, now), now)
        .await
        .unwrap();
    let (r1, r2, r3) = (secret_hash("r1"), secret_hash("r2"), secret_hash("r3"));
    let Rotation::Rotated(after) = s.rotate("f1", &r1, &r2, now).await.unwrap() else {
        panic!("the current token must rotate");
    };
    assert_eq!(after.refresh_hash, r2);
    assert!(!after.revoked);
    assert_eq!(after.tokens, vec![minted(1, now)]);
    // r1 again: a reuse. The family is revoked and reported with its tokens.
    let Rotation::Reused(reused) = s.rotate("f1", &r1, &r3, now).await.unwrap() else {
        panic!("a stale token must be reported as reused");
    };
    assert!(reused.revoked);
    assert_eq!(reused.tokens, vec![minted(1, now)]);
    // Even the current token no longer rotates.
    assert!(matches!(
        s.rotate("f1", &r2, &r3, now).await.unwrap(),
        Rotation::Revoked(_)
    ));
    assert!(s.family("f1", now).await.unwrap().unwrap().revoked);
    assert_eq!(
        s.rotate("nope", &r1, &r2, now).await.unwrap(),
        Rotation::Unknown
    );
}

pub async fn a_family_keeps_its_newest_tokens_and_can_be_revoked(stores: &Stores) {
    let now = wall_clock();
    let s = &stores.authcodes;
    s.start_family(&family("f2", "r1", now), now).await.unwrap();
    for n in 0..MAX_FAMILY_TOKENS + 3 {
        s.add_family_token("f2", &minted(n, now), now)
            .await
            .unwrap();
    }
    // Unknown family: nothing happens.
    s.add_family_token("nope", &minted(0, now), now)
        .await
        .unwrap();
    let f = s.family("f2", now).await.unwrap().unwrap();
    assert_eq!(f.tokens.len(), MAX_FAMILY_TOKENS);
    assert_eq!(f.tokens.first(), Some(&minted(3, now)));
    let revoked = s.revoke_family("f2", now).await.unwrap().unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.tokens.len(), MAX_FAMILY_TOKENS);
    assert!(s.revoke_family("nope", now).await.unwrap().is_none());
    // Past its life a family is unknown.
    let later = now + TimeDelta::seconds(601);
    assert!(s.family("f2", later).await.unwrap().is_none());
    assert_eq!(
        s.rotate("f2", &secret_hash("r1"), &secret_hash("r2"), later)
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

fn consent(client: &str, resource: &str, scopes: &[&str], now: DateTime<Utc>) -> RememberedConsent {
    RememberedConsent {
        person: alice(),
        client_id: client.into(),
        resource: Audience::parse(resource).unwrap(),
        scopes: scopes.iter().map(|a| Action::parse(a).unwrap()).collect(),
        granted_at: DateTime::from_timestamp(now.timestamp(), 0).unwrap(),
        families: vec![],
    }
}

pub async fn remembered_consents_replace_list_and_are_withdrawn(stores: &Stores) {
    let now = wall_clock();
    let s = &stores.authcodes;
    let b = consent(
        "https://b.example/c",
        "https://mcp.example/",
        &["get_order"],
        now,
    );
    let a1 = consent(
        "https://a.example/c",
        "https://mcp.example/",
        &["get_order"],
        now,
    );
    let a2 = consent(
        "https://a.example/c",
        "https://mcp.example/",
        &["get_order", "list_orders"],
        now,
    );
    s.remember(&b).await.unwrap();
    s.remember(&a1).await.unwrap();
    s.remember(&a2).await.unwrap();
    assert_eq!(s.remembered(&alice()).await.unwrap(), vec![a2, b.clone()]);
    let bob = Person::parse("https://idp.example", "bob").unwrap();
    assert!(s.remembered(&bob).await.unwrap().is_empty());
    assert!(!s
        .forget(&bob, "https://b.example/c", &b.resource)
        .await
        .unwrap());
    assert!(s
        .forget(&alice(), "https://a.example/c", &b.resource)
        .await
        .unwrap());
    assert!(!s
        .forget(&alice(), "https://a.example/c", &b.resource)
        .await
        .unwrap());
    assert_eq!(s.remembered(&alice()).await.unwrap(), vec![b]);
}

pub async fn a_person_remembers_at_most_the_bounded_number_of_consents(stores: &Stores) {
    let now = wall_clock();
    let s = &stores.authcodes;
    for n in 0..MAX_REMEMBERED_PER_PERSON {
        let c = consent(
            &format!("https://c{n}.example/m"),
            "https://mcp.example/",
            &["x"],
            now,
        );
        s.remember(&c).await.unwrap();
    }
    let one_more = consent(
        "https://more.example/m",
        "https://mcp.example/",
        &["x"],
        now,
    );
    assert!(matches!(
        s.remember(&one_more).await,
        Err(StoreError::Limit(_))
    ));
    // Replacing one that is there is not growth.
    let again = consent("https://c0.example/m", "https://mcp.example/", &["y"], now);
    s.remember(&again).await.unwrap();
    assert_eq!(
        s.remembered(&alice()).await.unwrap().len(),
        MAX_REMEMBERED_PER_PERSON
    );
}

pub async fn a_remembered_consent_lists_its_families_until_withdrawn(stores: &Stores) {
    let now = wall_clock();
    let s = &stores.authcodes;
    let c = consent(
        "https://f.example/c",
        "https://mcp.example/",
        &["get_order"],
        now,
    );
    let bob = Person::parse("https://idp.example", "bob").unwrap();
    assert!(!s
        .add_consent_family(&alice(), &c.client_id, &c.resource, "f0")
        .await
        .unwrap());
    s.remember(&c).await.unwrap();
    assert!(!s
        .add_consent_family(&bob, &c.client_id, &c.resource, "f0")
        .await
        .unwrap());
    for n in 0..MAX_CONSENT_FAMILIES + 2 {
        assert!(s
            .add_consent_family(&alice(), &c.client_id, &c.resource, &format!("f{n}"))
            .await
            .unwrap());
    }
    let listed = s.remembered(&alice()).await.unwrap();
    assert_eq!(listed.len(), 1);
    let families = &listed[0].families;
    assert_eq!(families.len(), MAX_CONSENT_FAMILIES);
    assert_eq!(families.first().map(String::as_str), Some("f2"));
    assert_eq!(
        families.last().cloned(),
        Some(format!("f{}", MAX_CONSENT_FAMILIES + 1))
    );
    assert_eq!(listed[0].scopes, c.scopes);
    assert_eq!(listed[0].granted_at, c.granted_at);
    // Remembering again (a new approval) starts a fresh list.
    s.remember(&c).await.unwrap();
    assert!(s.remembered(&alice()).await.unwrap()[0].families.is_empty());
    assert!(s.forget(&alice(), &c.client_id, &c.resource).await.unwrap());
    assert!(!s
        .add_consent_family(&alice(), &c.client_id, &c.resource, "late")
        .await
        .unwrap());
    assert!(s.remembered(&alice()).await.unwrap().is_empty());
}
