//! A `redis-server` of a test's own, on a free port, that the test can stop
//! and restart on the same port.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a fresh server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running (or stopped) `redis-server` owned by one test.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    persistent: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence (`--save "" --appendonly no`).
    ///
    /// Returns `None`, after saying so loudly on stderr, when `redis-server`
    /// is not installed, unless `TESSERA_REQUIRE_REDIS=1`: then it fails.
    pub fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start); with `persistent`, the server keeps its
    /// data across [`restart`](Self::restart) (append-only file, fsync on
    /// every write), so a test can tell what was acknowledged.
    pub fn start_with(persistent: bool) -> Option<Self> {
        if !redis_installed() {
            if std::env::var("TESSERA_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("TESSERA_REQUIRE_REDIS=1 but `redis-server` is not on PATH");
            }
            eprintln!(
                "\n*** SKIPPED: `redis-server` is not on PATH, so this Redis store test did not \
                 run. Install redis-server (or set TESSERA_REQUIRE_REDIS=1 to make this fail). ***\n"
            );
            return None;
        }
        let mut server = Self {
            port: 0,
            dir: tempfile::tempdir().expect("temp dir for redis-server"),
            persistent,
            child: None,
        };
        // Another process may take the free port before the server binds
        // it: try a few ports.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn_and_wait() {
                return Some(server);
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// The URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn_and_wait(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Spawns the server and waits until it accepts connections; `false`
    /// if it exited first (port taken).
    fn spawn_and_wait(&mut self) -> bool {
        let port = self.port.to_string();
        let dir = self.dir.path().to_str().expect("utf-8 temp dir").to_owned();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
            .args(["--save", ""]);
        if self.persistent {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().expect("poll redis-server").is_some() {
                    self.child = None;
                    return false;
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
