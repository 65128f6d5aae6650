//! A Redis Cluster of a test's own: three masters on free ports, made with
//! `redis-cli --cluster create`, with a replica on demand, failover, and a
//! node restart. Every process is killed on drop.

// Some helpers (stop, restart, urls) are for the follower's and the
// issuer's tests that use this harness.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::redis_server::free_port;

/// How long the cluster may take to form or to settle after a change.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// One `redis-server --cluster-enabled yes` process.
struct Node {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A running Redis Cluster owned by one test.
pub struct RedisCluster {
    _dir: TempDir,
    persistent: bool,
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts three masters without persistence and joins them.
    ///
    /// Returns `None`, after saying so loudly on stderr, when `redis-server`
    /// is not installed, unless `TESSERA_REQUIRE_REDIS=1`: then it fails.
    pub fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start); with `persistent`, each node keeps its
    /// data across [`restart`](Self::restart) (append-only file, fsync
    /// always).
    pub fn start_with(persistent: bool) -> Option<Self> {
        if !installed() {
            if std::env::var("TESSERA_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("TESSERA_REQUIRE_REDIS=1 but `redis-server`/`redis-cli` is not on PATH");
            }
            eprintln!(
                "\n*** SKIPPED: `redis-server` is not on PATH, so this Redis Cluster test did \
                 not run. Install redis-server (or set TESSERA_REQUIRE_REDIS=1 to make this \
                 fail). ***\n"
            );
            return None;
        }
        let mut cluster = Self {
            _dir: tempfile::tempdir().expect("temp dir for the cluster"),
            persistent,
            nodes: Vec::new(),
        };
        for _ in 0..3 {
            cluster.spawn_node();
        }
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port)),
        );
        create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let out = Command::new("redis-cli")
            .args(&create)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        Some(cluster)
    }

    /// The store's URL for this cluster: `redis+cluster://` and every node.
    pub fn cluster_url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The URLs of every node (masters and replicas).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect()
    }

    /// The ports of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Runs `redis-cli -p <port> <args…>` and returns its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// `GET key` on the node at `port` itself, even a replica (`READONLY`
    /// first): what that node holds now, without redirection.
    pub fn get_on(&self, port: u16, key: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli");
        let mut stdin = child.stdin.take().expect("stdin");
        // One argument per line would split on spaces: quote the key.
        writeln!(stdin, "READONLY\nGET \"{key}\"").expect("write to redis-cli");
        drop(stdin);
        let out = child.wait_with_output().expect("redis-cli output");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().skip(1).collect::<Vec<_>>().join("\n")
    }

    /// The port of the master serving `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.nodes[0].port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT");
        for node in &self.nodes {
            if node.child.is_none() || role(node.port) != "master" {
                continue;
            }
            // CLUSTER SHARDS would do; CLUSTER NODES is older and enough:
            // `<id> <addr> myself,master - … <slot ranges>`.
            let nodes = cli(node.port, &["cluster", "nodes"]);
            let mine = nodes
                .lines()
                .find(|l| l.contains("myself"))
                .expect("CLUSTER NODES has myself");
            if owns(mine, slot) {
                return node.port;
            }
        }
        panic!("no master owns slot {slot}");
    }

    /// Adds a replica of the master serving `key`'s slot; returns its port
    /// once it is in sync.
    pub fn add_replica_for(&mut self, key: &str) -> u16 {
        let master = self.master_of(key);
        let master_id = cli(master, &["cluster", "myid"]).trim().to_owned();
        let index = self.spawn_node();
        let port = self.nodes[index].port;
        let out = Command::new("redis-cli")
            .args(["--cluster", "add-node"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("127.0.0.1:{master}"))
            .args(["--cluster-slave", "--cluster-master-id", &master_id])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster add-node");
        assert!(
            out.status.success(),
            "add-node failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        wait_for(|| cli(port, &["info", "replication"]).contains("master_link_status:up"));
        // The replica's link is up a moment before its master counts it
        // online (and lists it in ROLE, which the store asks before `WAIT`).
        wait_for(|| {
            cli(master, &["info", "replication"])
                .lines()
                .any(|l| l.contains(&format!("port={port},")) && l.contains("state=online"))
        });
        self.wait_ok();
        port
    }

    /// Makes `replica` take over from its master (`CLUSTER FAILOVER`) and
    /// waits until it is master and the cluster is ok.
    pub fn failover(&self, replica: u16) {
        // ROLE on a replica: `slave`, the master's host, its port, …
        let old_master = cli(replica, &["role"])
            .lines()
            .nth(2)
            .and_then(|p| p.trim().parse::<u16>().ok());
        let reply = cli(replica, &["cluster", "failover"]);
        assert!(reply.contains("OK"), "CLUSTER FAILOVER: {reply}");
        wait_for(|| role(replica) == "master");
        // The old master steps down a moment later; until then it still
        // claims the slots, and `master_of` could name it.
        if let Some(old) = old_master {
            wait_for(|| role(old) != "master");
        }
        self.wait_ok();
    }

    /// Freezes the node on `port` (SIGSTOP): it keeps its connections but
    /// answers nothing until [`resume`](Self::resume).
    pub fn pause(&mut self, port: u16) {
        self.signal(port, "-STOP");
    }

    /// Lets a node frozen by [`pause`](Self::pause) run again (SIGCONT).
    pub fn resume(&mut self, port: u16) {
        self.signal(port, "-CONT");
    }

    fn signal(&mut self, port: u16, signal: &str) {
        let pid = self
            .node_mut(port)
            .child
            .as_ref()
            .expect("node is running")
            .id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Kills the node on `port` (SIGKILL, like a crash).
    pub fn stop(&mut self, port: u16) {
        let node = self.node_mut(port);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the node on `port` and starts it again, on the same ports and
    /// data directory; waits until the cluster is ok.
    pub fn restart(&mut self, port: u16) {
        self.stop(port);
        let persistent = self.persistent;
        let node = self.node_mut(port);
        spawn(node, persistent);
        wait_for(|| cli(port, &["ping"]).contains("PONG"));
        self.wait_ok();
    }

    /// Kills every node (SIGKILL): the whole cluster is down.
    pub fn stop_all(&mut self) {
        for port in self.ports() {
            self.stop(port);
        }
    }

    /// Starts every node stopped by [`stop`](Self::stop) or
    /// [`stop_all`](Self::stop_all) again, on the same ports and data
    /// directories; waits until the cluster is ok.
    pub fn restart_stopped(&mut self) {
        let persistent = self.persistent;
        for node in self.nodes.iter_mut().filter(|n| n.child.is_none()) {
            assert!(
                spawn(node, persistent),
                "node {} did not restart",
                node.port
            );
        }
        self.wait_ok();
    }

    /// Waits until the node on `port` is a master (a replica promoted after
    /// its master failed) and the cluster is ok.
    pub fn wait_master(&self, port: u16) {
        wait_for(|| role(port) == "master");
        self.wait_ok();
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// Spawns a new node on free ports; returns its index.
    fn spawn_node(&mut self) -> usize {
        let index = self.nodes.len();
        let dir = self._dir.path().join(format!("node{index}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut node = Node {
            port: 0,
            bus_port: 0,
            dir,
            child: None,
        };
        for _ in 0..5 {
            node.port = free_port();
            node.bus_port = free_port();
            if node.port != node.bus_port && spawn(&mut node, self.persistent) {
                self.nodes.push(node);
                return index;
            }
        }
        panic!("a cluster node did not start on any of 5 free ports");
    }

    /// Waits until every running node says `cluster_state:ok` and agrees on
    /// the slots.
    fn wait_ok(&self) {
        wait_for(|| {
            self.nodes
                .iter()
                .filter(|n| n.child.is_some())
                .all(|n| cli(n.port, &["cluster", "info"]).contains("cluster_state:ok"))
        });
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // A paused node must be let run to die.
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Spawns `node` and waits until it answers; `false` if it exited first.
fn spawn(node: &mut Node, persistent: bool) -> bool {
    let dir = node.dir.to_str().expect("utf-8 temp dir").to_owned();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &node.port.to_string()])
        .args(["--cluster-port", &node.bus_port.to_string()])
        .args(["--bind", "127.0.0.1", "--dir", &dir])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--cluster-node-timeout", "1000"])
        .args(["--save", ""]);
    if persistent {
        command.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        command.args(["--appendonly", "no"]);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    node.child = Some(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(child) = node.child.as_mut() {
            if child.try_wait().expect("poll redis-server").is_some() {
                node.child = None;
                return false;
            }
        }
        if cli(node.port, &["ping"]).contains("PONG") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(mut child) = node.child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    false
}

/// `redis-cli -p <port> <args…>`: its standard output.
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first line of `ROLE`: `master` or `slave`.
fn role(port: u16) -> String {
    cli(port, &["role"])
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Whether a `CLUSTER NODES` line's slot ranges hold `slot`.
fn owns(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let (from, to) = range.split_once('-').unwrap_or((range, range));
        matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
    })
}

fn wait_for(mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE_WITHIN;
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the Redis Cluster did not settle within {SETTLE_WITHIN:?}");
}

/// The harness itself: a cluster forms, a replica joins and takes over.
#[test]
fn a_cluster_forms_and_a_replica_takes_over() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    let key = "tessera:{rev}:revocations";
    let master = cluster.master_of(key);
    assert_eq!(cluster.cli(master, &["-c", "set", key, "v"]).trim(), "OK");
    let replica = cluster.add_replica_for(key);
    wait_for(|| cluster.get_on(replica, key).trim() == "v");
    cluster.failover(replica);
    assert_eq!(cluster.master_of(key), replica);
    assert_eq!(cluster.cli(replica, &["get", key]).trim(), "v");
}

fn installed() -> bool {
    ["redis-server", "redis-cli"].iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}
