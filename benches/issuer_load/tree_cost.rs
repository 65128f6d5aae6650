//! The audit tree's cost on a mint (issue 14): the same load on the normal
//! `tessera` and on a build without the audit tree (`LOAD_BIN_NO_TREE`,
//! built with `RUSTFLAGS="--cfg tessera_bench_no_audit_tree"`, see
//! `tessera::store::tree::AUDIT_TREE_ON` and docs/performance.md), per
//! store, each run on a fresh server and store. Rounds alternate which
//! build runs first, so that other load on the machine falls on both.
//! Before a server is timed it must show what it is: the normal build signs
//! an audit checkpoint, the other answers 503.

use std::time::Duration;

use biscuit_auth::KeyPair;

use super::{bin, cluster, http_run, median, start_redis, Grant, Run};

/// The stores this comparison knows, in the order it runs them.
const STORES: [&str; 3] = ["embedded", "redis", "cluster"];

/// One timed run of one build.
struct Measured {
    round: usize,
    store: &'static str,
    tree: bool,
    run: Run,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.run.rate()
    }

    /// `tessera serve`'s CPU per request, µs.
    fn server_us(&self) -> f64 {
        self.run
            .server_cpu
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    }

    /// The server's and redis-server's CPU per request together, µs (the
    /// server's alone on the embedded store).
    fn total_us(&self) -> f64 {
        let redis = self.run.redis_cpu.unwrap_or(Duration::ZERO);
        self.run
            .server_cpu
            .map_or(f64::NAN, |d| (d + redis).as_secs_f64() * 1e6)
    }
}

/// Runs both builds, `rounds` times per store named in `stores`, and prints
/// every run, the medians and the ratios (with the tree / without it).
pub fn compare(
    grant: &Grant,
    no_tree: &str,
    requests: usize,
    rounds: usize,
    concurrency: usize,
    stores: &str,
) {
    let agent = KeyPair::new();
    let normal = bin();
    let mut measured = Vec::new();
    for round in 1..=rounds {
        // Odd rounds start with the tree, even rounds without it.
        let order = if round % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for store in STORES.into_iter().filter(|s| stores.contains(s)) {
            for tree in order {
                let (path, build) = if tree {
                    (normal.as_str(), "with tree")
                } else {
                    (no_tree, "without tree")
                };
                let label = format!("{store}, {build}");
                let run = one_run(store, grant, &label, path, requests, concurrency, &agent);
                let Some(run) = run else {
                    continue;
                };
                assert_eq!(
                    run.tree, tree,
                    "{path} is not the build it was given as ({build}): its checkpoint says otherwise"
                );
                measured.push(Measured {
                    round,
                    store,
                    tree,
                    run,
                });
            }
        }
    }
    print(grant, &measured, requests, rounds, concurrency);
}

/// One [`http_run`] of binary `path` on a fresh `store`; `None` (with a
/// message) if that store cannot be started here.
fn one_run(
    store: &str,
    grant: &Grant,
    label: &str,
    path: &str,
    requests: usize,
    concurrency: usize,
    agent: &KeyPair,
) -> Option<Run> {
    let run = |redis: Option<(&str, &[u32])>| {
        http_run(grant, label, path, redis, requests, concurrency, agent)
    };
    match store {
        "embedded" => Some(run(None)),
        "redis" => match start_redis() {
            Some((proc, url, _dir)) => Some(run(Some((&url, &[proc.0.id()])))),
            None => {
                eprintln!("issuer_load: redis-server not available; Redis run skipped");
                None
            }
        },
        _ => match cluster::Cluster::start() {
            Ok(c) => Some(run(Some((&c.url(), &c.pids())))),
            Err(e) => {
                eprintln!("issuer_load: no Redis Cluster ({e}); cluster run skipped");
                None
            }
        },
    }
}

fn print(grant: &Grant, measured: &[Measured], requests: usize, rounds: usize, concurrency: usize) {
    println!(
        "\n{}, with and without the audit tree: {requests} requests per run, \
         {concurrency} concurrent, loopback, {rounds} rounds",
        grant.title()
    );
    println!(
        "| round | run | tokens/s | p50 | p99 | errors | server CPU/request | of which store writer | redis-server CPU/request |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in measured {
        let r = &m.run;
        println!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {} | {} |",
            m.round,
            r.label,
            m.rate(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors,
            super::micros(r.server_cpu),
            super::micros(r.writer_cpu),
            super::micros(r.redis_cpu),
        );
    }
    println!("\nMedians over {rounds} rounds (ratio: with the tree / without it):");
    println!(
        "| store | tokens/s with | without | ratio | server CPU/request with | without | ratio | server + redis-server CPU/request with | without | ratio | target (≥ 0.90 throughput, ≤ 1.10 CPU) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for store in STORES {
        let med = |tree: bool, f: &dyn Fn(&Measured) -> f64| {
            median(
                measured
                    .iter()
                    .filter(|m| m.store == store && m.tree == tree)
                    .map(f)
                    .collect(),
            )
        };
        let rate = (med(true, &Measured::rate), med(false, &Measured::rate));
        if rate.0.is_nan() || rate.1.is_nan() {
            continue;
        }
        let server = (
            med(true, &Measured::server_us),
            med(false, &Measured::server_us),
        );
        let total = (
            med(true, &Measured::total_us),
            med(false, &Measured::total_us),
        );
        let holds = rate.0 / rate.1 >= 0.90 && total.0 / total.1 <= 1.10;
        println!(
            "| {store} | {:.0} | {:.0} | {:.2} | {:.0} µs | {:.0} µs | {:.2} | {:.0} µs | {:.0} µs | {:.2} | {} |",
            rate.0,
            rate.1,
            rate.0 / rate.1,
            server.0,
            server.1,
            server.0 / server.1,
            total.0,
            total.1,
            total.0 / total.1,
            if holds { "holds" } else { "MISSED" },
        );
    }
    print_paired(measured, rounds);
}

/// The median over the rounds of each round's ratio (the two builds of a
/// round ran back to back, so a swing of the machine falls on both).
fn print_paired(measured: &[Measured], rounds: usize) {
    println!("\nPaired: the median of the {rounds} per-round ratios (with the tree / without it):");
    println!("| store | tokens/s ratio | server CPU ratio | server + redis-server CPU ratio | target (≥ 0.90 throughput, ≤ 1.10 CPU) |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for store in STORES {
        let of = |round: usize, tree: bool| {
            measured
                .iter()
                .find(|m| m.store == store && m.round == round && m.tree == tree)
        };
        let pairs: Vec<(&Measured, &Measured)> = (1..=rounds)
            .filter_map(|r| Some((of(r, true)?, of(r, false)?)))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let ratio = |f: &dyn Fn(&Measured) -> f64| {
            median(
                pairs
                    .iter()
                    .map(|(with, without)| f(with) / f(without))
                    .collect(),
            )
        };
        let rate = ratio(&Measured::rate);
        let server = ratio(&Measured::server_us);
        let total = ratio(&Measured::total_us);
        let holds = rate >= 0.90 && total <= 1.10;
        println!(
            "| {store} | {rate:.2} | {server:.2} | {total:.2} | {} |",
            if holds { "holds" } else { "MISSED" },
        );
    }
}
