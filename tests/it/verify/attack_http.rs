//! Issue 9, finding 1, over real HTTP: adversarial tokens sent to a running
//! tool server (the verifier guide's example, `examples/verifier_axum.rs`,
//! on loopback) are refused with `limits_exceeded` promptly, while
//! legitimate requests sent at the same time are all served promptly.
//!
//! The shapes are those of `tests/it/token/adversarial.rs` (each ran for
//! seconds, or took hundreds of megabytes, before the shape gate): nested
//! closures, a four-way join by a rule and in a check, more checks than a
//! block may hold, and a chain of the most blocks allowed ending in
//! closures. The bounds are generous on purpose (a shared, loaded machine):
//! they show "nothing stalls for seconds", not a speed
//! (`benches/adversarial.rs` measures that).

use std::time::{Duration, Instant};

use biscuit_auth::BlockBuilder;
use reqwest::StatusCode;
use tessera::token::Limits;

use super::example::{order_token, Answer, ExampleServer};
use crate::server::helpers::{now, TestApp};
use crate::token::raw::append_first_party;

/// Longest any answer may take, legitimate or adversarial.
const PROMPT: Duration = Duration::from_secs(2);
/// Requests of each kind sent at once.
const EACH: usize = 20;

/// `[0, 1, ..., n-1]` as Datalog source.
fn array(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(", "))
}

/// Closures over 40-element arrays nested five deep (40^5 evaluations).
fn nested_closures(salt: usize) -> BlockBuilder {
    let a = array(40);
    let src = format!(
        "check if {a}.all($a -> {a}.all($b -> {a}.all($c -> {a}.all($d -> {a}.all($e -> \
         $a + $b + $c + $d + $e >= -{salt})))));"
    );
    BlockBuilder::new().code(&src).unwrap()
}

/// 40 facts joined four ways by a rule (40^4 generated facts).
fn join_by_rule(salt: usize) -> BlockBuilder {
    let facts: String = (0..40).map(|i| format!("n({});", i + salt)).collect();
    let src = format!("{facts} j($a, $b, $c, $d) <- n($a), n($b), n($c), n($d);");
    BlockBuilder::new().code(&src).unwrap()
}

/// The same join in a check (40^4 combinations, none matching).
fn join_by_check(salt: usize) -> BlockBuilder {
    let facts: String = (0..40).map(|i| format!("n({});", i + salt)).collect();
    let src = format!("{facts} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d < 0;");
    BlockBuilder::new().code(&src).unwrap()
}

/// More plain checks than a block may hold (16, `src/token/gate.rs`).
fn many_checks(salt: usize) -> BlockBuilder {
    let src: String = (0..=16 + salt)
        .map(|i| format!("check if time($t), $t >= {i};"))
        .collect();
    BlockBuilder::new().code(&src).unwrap()
}

/// A chain of as many blocks as the default limits allow, each a plain
/// narrowing check, the last one nested closures.
fn max_blocks_ending_in_closures(token: &str, salt: usize) -> String {
    let mut token = token.to_owned();
    for i in 2..Limits::default().max_blocks {
        let b = BlockBuilder::new()
            .code(format!("check if time($t), $t >= {i};"))
            .unwrap();
        token = append_first_party(&token, b);
    }
    append_first_party(&token, nested_closures(salt))
}

/// The adversarial tokens, built from a valid one: every shape, in turn.
fn adversarial(valid: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 5 {
            0 => append_first_party(valid, nested_closures(i)),
            1 => append_first_party(valid, join_by_rule(i)),
            2 => append_first_party(valid, join_by_check(i)),
            3 => append_first_party(valid, many_checks(i)),
            _ => max_blocks_ending_in_closures(valid, i),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_tokens_are_refused_promptly_while_concurrent_legitimate_calls_are_served() {
    let issuer = TestApp::spawn().await;
    let server = std::sync::Arc::new(ExampleServer::start(&issuer).await);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let valid = order_token(&issuer, &server.base, "orders:read", now());
    // The server is up and the token is good before the attack starts.
    let r = server.get_order(&http, 0, &valid).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let tokens = adversarial(&valid, EACH);

    // Both kinds at once, interleaved: each task times its own request.
    let mut tasks = Vec::new();
    for (i, bad) in tokens.into_iter().enumerate() {
        for (legit, token) in [(true, valid.clone()), (false, bad)] {
            let (server, http) = (server.clone(), http.clone());
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let answer = server.get_order(&http, i as u32 + 1, &token).await;
                (legit, i, start.elapsed(), answer)
            }));
        }
    }
    let mut answers: Vec<(bool, usize, Duration, Answer)> = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }

    let slowest_legit = answers.iter().filter(|a| a.0).map(|a| a.2).max().unwrap();
    for (legit, i, took, a) in &answers {
        if *legit {
            assert_eq!(a.status, StatusCode::OK, "legitimate call {i}: {a:?}");
        } else {
            assert!(
                matches!(a.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                "adversarial token {i} (shape {}): {a:?}",
                i % 5
            );
            assert!(a.body.contains("limits_exceeded"), "token {i}: {a:?}");
            assert!(a.challenge.contains("limits_exceeded"), "token {i}: {a:?}");
            assert!(*took < PROMPT, "adversarial token {i} took {took:?}");
        }
    }
    assert_eq!(answers.len(), 2 * EACH);
    assert!(
        slowest_legit < PROMPT,
        "the slowest legitimate call took {slowest_legit:?} under attack"
    );
}
