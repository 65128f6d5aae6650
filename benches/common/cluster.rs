//! A Redis Cluster of the bench's own: three masters without persistence on
//! free ports, joined with `redis-cli --cluster create`. Every node is
//! killed on drop. Shared by benches/issuer_load.rs and
//! benches/propagation.rs (`#[path]`); the tests have their own, fuller one
//! (tests/it/store/redis_cluster.rs).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Three running cluster nodes.
pub struct Cluster {
    nodes: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three masters and waits until every one says
    /// `cluster_state:ok`; `Err` says why not (no `redis-server` on PATH,
    /// `--cluster create` failed, no agreement within 30 s).
    pub fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut cluster = Self {
            nodes: Vec::new(),
            _dir: dir,
        };
        for i in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let node_dir = cluster._dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("redis-server: {e}"))?;
            cluster.nodes.push((port, child));
            wait("a cluster node to answer", || {
                cli(port, &["ping"]).contains("PONG")
            })?;
        }
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(cluster.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let out = Command::new("redis-cli")
            .args(&create)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        let ports: Vec<u16> = cluster.nodes.iter().map(|(p, _)| *p).collect();
        wait("cluster_state:ok on every node", || {
            ports
                .iter()
                .all(|&p| cli(p, &["cluster", "info"]).contains("cluster_state:ok"))
        })?;
        Ok(cluster)
    }

    /// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The process ids of the nodes (for their CPU time).
    #[allow(dead_code)] // Not every bench reads them.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|(_, c)| c.id()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `redis-cli -p <port> <args…>`: its standard output ("" if it failed).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn wait(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
