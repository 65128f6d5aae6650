//! The approval store's contract (run on every backend through
//! `contract_suite!`): decide once, collect once, slow_down, expiry, and
//! the bounds on pending requests.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tessera::store::approvals::{MAX_PENDING_PER_AGENT, MAX_PENDING_PER_PERSON};
use tessera::store::{
    Approval, ApprovalStatus, AskedCapability, Decided, Decider, Polled, StoreError, Stores,
    Verdict,
};
use tessera::token::{Action, AgentId, Amount, Audience, Person, ResourcePattern};

use super::contract::wall_clock;

fn alice() -> Person {
    Person::parse("https://login.acme.example", "alice").unwrap()
}

fn unique(what: &str) -> String {
    format!("{what}-{:016x}", rand::random::<u64>())
}

pub fn approval(agent: &str, person: &Person, now: DateTime<Utc>) -> Approval {
    Approval {
        id: unique("ar"),
        agent: AgentId::parse(agent).unwrap(),
        prior_actors: vec![AgentId::parse("agent://acme/planner").unwrap()],
        person: person.clone(),
        capability: AskedCapability {
            action: Action::parse("payments:create").unwrap(),
            resource: ResourcePattern::parse("invoice:42").unwrap(),
            audience: Some(Audience::parse("https://pay.example").unwrap()),
            amount: Some(Amount::parse("40.00EUR").unwrap()),
            ttl_secs: 300,
        },
        binding_message: Some("pay invoice 42".to_owned()),
        notification_token: None,
        created_at: now,
        expires_at: now + TimeDelta::seconds(120),
        interval_secs: 2,
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        last_poll: None,
    }
}

pub async fn an_approval_is_decided_once_by_its_person_and_collected_once(stores: &Stores) {
    let now = wall_clock();
    let agent = unique("agent://acme/payer");
    let a = approval(&agent, &alice(), now);
    let ap = &stores.approvals;
    ap.create(&a, now).await.unwrap();
    assert_eq!(ap.get(&a.id).await.unwrap().unwrap(), a);
    let bob = Person::parse("https://login.acme.example", "bob").unwrap();
    let me = AgentId::parse(&agent).unwrap();
    // Pending, then polled too early: slow_down with the interval grown by 5 s.
    assert_eq!(ap.poll(&a.id, &me, now).await.unwrap(), Polled::Pending);
    assert_eq!(
        ap.poll(&a.id, &me, now + TimeDelta::seconds(1))
            .await
            .unwrap(),
        Polled::SlowDown(7)
    );
    // Another agent's id is unknown to it.
    let other = AgentId::parse("agent://acme/other").unwrap();
    assert_eq!(ap.poll(&a.id, &other, now).await.unwrap(), Polled::Unknown);
    assert_eq!(
        ap.decide(&a.id, &Decider::Person(bob), Verdict::Approve, now)
            .await
            .unwrap(),
        Decided::NotYours
    );
    let by = Decider::Person(alice());
    let Decided::Decided(d) = ap.decide(&a.id, &by, Verdict::Approve, now).await.unwrap() else {
        panic!("the person's decision was not recorded");
    };
    assert_eq!(d.status, ApprovalStatus::Approved);
    assert_eq!(d.decided_by.as_deref(), Some("person"));
    assert_eq!(
        ap.decide(&a.id, &by, Verdict::Deny, now).await.unwrap(),
        Decided::AlreadyDecided(ApprovalStatus::Approved)
    );
    let later = now + TimeDelta::seconds(30);
    let Polled::Collect(c) = ap.poll(&a.id, &me, later).await.unwrap() else {
        panic!("the approved request was not collected");
    };
    assert_eq!(c.capability, a.capability);
    assert_eq!(
        ap.poll(&a.id, &me, later + TimeDelta::seconds(30))
            .await
            .unwrap(),
        Polled::AlreadyCollected
    );
    assert_eq!(
        ap.decide("no-such-id", &by, Verdict::Approve, now)
            .await
            .unwrap(),
        Decided::Unknown
    );
    let listed = ap.for_person(&alice(), 100).await.unwrap();
    assert!(listed.iter().any(|x| x.id == a.id));
}

pub async fn a_denied_or_expired_approval_gives_no_token(stores: &Stores) {
    let now = wall_clock();
    let agent = unique("agent://acme/payer");
    let me = AgentId::parse(&agent).unwrap();
    let ap = &stores.approvals;
    let denied = approval(&agent, &alice(), now);
    ap.create(&denied, now).await.unwrap();
    let by = Decider::Operator("ops".to_owned());
    assert!(matches!(
        ap.decide(&denied.id, &by, Verdict::Deny, now)
            .await
            .unwrap(),
        Decided::Decided(_)
    ));
    assert_eq!(ap.poll(&denied.id, &me, now).await.unwrap(), Polled::Denied);

    let late = approval(&agent, &alice(), now);
    ap.create(&late, now).await.unwrap();
    let after = late.expires_at + TimeDelta::seconds(1);
    assert_eq!(
        ap.decide(&late.id, &Decider::Person(alice()), Verdict::Approve, after)
            .await
            .unwrap(),
        Decided::Expired
    );
    assert_eq!(
        ap.poll(&late.id, &me, after).await.unwrap(),
        Polled::Expired
    );
}

pub async fn exactly_one_of_16_concurrent_decisions_and_collections_wins(stores: &Stores) {
    let now = wall_clock();
    let agent = unique("agent://acme/payer");
    let me = AgentId::parse(&agent).unwrap();
    let a = approval(&agent, &alice(), now);
    stores.approvals.create(&a, now).await.unwrap();
    let decide = (0..16).map(|i| {
        let ap = Arc::clone(&stores.approvals);
        let id = a.id.clone();
        let verdict = if i % 2 == 0 {
            Verdict::Approve
        } else {
            Verdict::Deny
        };
        tokio::spawn(async move {
            ap.decide(&id, &Decider::Person(alice()), verdict, now)
                .await
                .unwrap()
        })
    });
    let mut decided = Vec::new();
    for task in decide.collect::<Vec<_>>() {
        decided.push(task.await.unwrap());
    }
    let winners: Vec<_> = decided
        .into_iter()
        .filter_map(|d| match d {
            Decided::Decided(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1);
    if winners[0].status == ApprovalStatus::Denied {
        return;
    }
    // Each poller polls once, 10 s later (not too early for any of them).
    let later = now + TimeDelta::seconds(10);
    let polls = (0..16).map(|_| {
        let ap = Arc::clone(&stores.approvals);
        let (id, me) = (a.id.clone(), me.clone());
        tokio::spawn(async move { ap.poll(&id, &me, later).await.unwrap() })
    });
    let mut collected = 0;
    for task in polls.collect::<Vec<_>>() {
        if matches!(task.await.unwrap(), Polled::Collect(_)) {
            collected += 1;
        }
    }
    assert_eq!(collected, 1);
}

pub async fn pending_requests_are_bounded_per_agent_and_per_person(stores: &Stores) {
    let now = wall_clock();
    let ap = &stores.approvals;
    let agent = unique("agent://acme/flood");
    for i in 0..MAX_PENDING_PER_AGENT {
        let person = Person::parse("https://login.acme.example", &format!("p{i}")).unwrap();
        ap.create(&approval(&agent, &person, now), now)
            .await
            .unwrap();
    }
    let one_more = approval(&agent, &alice(), now);
    assert!(matches!(
        ap.create(&one_more, now).await,
        Err(StoreError::Limit(_))
    ));
    assert!(ap.get(&one_more.id).await.unwrap().is_none());

    let carol = Person::parse("https://login.acme.example", &unique("carol")).unwrap();
    let mut first = None;
    for _ in 0..MAX_PENDING_PER_PERSON {
        let a = approval(&unique("agent://acme/a"), &carol, now);
        ap.create(&a, now).await.unwrap();
        first.get_or_insert(a);
    }
    let refused = approval(&unique("agent://acme/a"), &carol, now);
    assert!(matches!(
        ap.create(&refused, now).await,
        Err(StoreError::Limit(_))
    ));
    // Deciding one frees its place.
    let first = first.unwrap();
    ap.decide(
        &first.id,
        &Decider::Person(carol.clone()),
        Verdict::Deny,
        now,
    )
    .await
    .unwrap();
    ap.create(&refused, now).await.unwrap();
}

pub async fn operators_list_every_persons_approvals_newest_first_and_by_status(stores: &Stores) {
    let now = wall_clock();
    let ap = &stores.approvals;
    let bob = Person::parse("https://login.acme.example", "bob").unwrap();
    let mut made = Vec::new();
    for (n, person) in [alice(), bob.clone(), alice()].iter().enumerate() {
        let mut a = approval(&unique("agent://acme/lister"), person, now);
        a.created_at = now + TimeDelta::milliseconds(n as i64);
        ap.create(&a, now).await.unwrap();
        made.push(a);
    }
    let operator = Decider::Operator("ops".to_owned());
    assert!(matches!(
        ap.decide(&made[0].id, &operator, Verdict::Approve, now)
            .await
            .unwrap(),
        Decided::Decided(_)
    ));
    assert!(matches!(
        ap.decide(&made[1].id, &Decider::Person(bob), Verdict::Deny, now)
            .await
            .unwrap(),
        Decided::Decided(_)
    ));
    let ids = |v: Vec<Approval>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    // Both people, newest first.
    let all = ids(ap.list(None, 100).await.unwrap());
    let ours: Vec<&String> = all
        .iter()
        .filter(|id| made.iter().any(|a| &&a.id == id))
        .collect();
    assert_eq!(ours, vec![&made[2].id, &made[1].id, &made[0].id]);
    assert_eq!(ap.list(None, 1).await.unwrap().len(), 1);
    // By status.
    let pending = ids(ap.list(Some(ApprovalStatus::Pending), 100).await.unwrap());
    assert!(pending.contains(&made[2].id));
    assert!(!pending.contains(&made[0].id) && !pending.contains(&made[1].id));
    let approved = ap.list(Some(ApprovalStatus::Approved), 100).await.unwrap();
    let mine = approved.iter().find(|a| a.id == made[0].id).unwrap();
    assert_eq!(mine.decided_by.as_deref(), Some("operator:ops"));
    assert!(approved
        .iter()
        .all(|a| a.status == ApprovalStatus::Approved));
    let denied = ids(ap.list(Some(ApprovalStatus::Denied), 100).await.unwrap());
    assert_eq!(
        denied.iter().filter(|id| **id == made[1].id).count(),
        1,
        "{denied:?}"
    );
}
