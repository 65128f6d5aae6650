//! The verifier's Redis connections (the revocation follower's and the
//! audit sink's): one server, or a Redis Cluster for a
//! `redis+cluster://[user:password@]host:port[,host:port…]` URL
//! (`rediss+cluster://` for TLS), the same URLs the issuer's store takes.
//!
//! The URL parsing is a copy of the store's (`src/store/redis/conn.rs`):
//! the verifier builds without the store module.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value,
};

/// Where to connect: one server or a cluster.
#[derive(Clone)]
pub(crate) enum Target {
    /// One server.
    Single(Client),
    /// A Redis Cluster: the client discovers the nodes and slots.
    Cluster(Box<ClusterClient>),
}

impl Target {
    /// Parses `url`; `connect` bounds connecting, `respond` each answer.
    /// On a failure, the error kind (never the URL, which may hold a
    /// password).
    pub(crate) fn open(url: &str, connect: Duration, respond: Duration) -> Result<Self, ErrorKind> {
        match cluster_nodes(url) {
            Some(nodes) if nodes.is_empty() => Err(ErrorKind::InvalidClientConfig),
            Some(nodes) => ClusterClient::builder(nodes)
                .connection_timeout(connect)
                .response_timeout(respond)
                .retries(2)
                .build()
                .map(|client| Self::Cluster(Box::new(client)))
                .map_err(|e| e.kind()),
            None => Client::open(url).map(Self::Single).map_err(|e| e.kind()),
        }
    }

    /// A new connection of the caller's own (not shared with another
    /// task). The caller bounds the whole call in time.
    pub(crate) async fn connect(
        &self,
        connect: Duration,
        respond: Duration,
    ) -> Result<Conn, RedisError> {
        match self {
            Self::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect))
                    .set_response_timeout(Some(respond));
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Conn::Single(conn))
            }
            Self::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
        }
    }
}

/// A connection to one server or to a cluster.
///
/// (`store::redis::conn` and `verify::redis_conn` each write this enum and
/// the `redis+cluster://` parsing: the verifier builds without the store,
/// and the two hold different single-server connections. One generic copy
/// in a module shared by both features is the next step, issue 10.)
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server.
    Single(MultiplexedConnection),
    /// A Redis Cluster: each command goes to the node serving its keys,
    /// following redirections after a failover.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Whether `url` names a Redis Cluster (`redis+cluster://…`).
pub(crate) fn is_cluster_url(url: &str) -> bool {
    cluster_nodes(url).is_some()
}

/// The node URLs of a `redis+cluster://[user:password@]host:port[,host:port…]`
/// URL (`rediss+cluster://` for TLS), or `None` for a one-server URL.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("+cluster://")?;
    if scheme != "redis" && scheme != "rediss" {
        return None;
    }
    let (credentials, hosts) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|host| host.trim().trim_end_matches('/'))
        .filter(|host| !host.is_empty())
        .map(|host| format!("{scheme}://{credentials}{host}/"))
        .collect();
    Some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_their_nodes_with_the_credentials() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379/"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@a:1,b:2/").unwrap(),
            ["redis://u:p@a:1/", "redis://u:p@b:2/"]
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://a:1").unwrap(),
            ["rediss://a:1/"]
        );
    }

    #[test]
    fn urls_pick_one_server_or_a_cluster() {
        let t = Duration::from_secs(1);
        assert!(matches!(
            Target::open("redis://127.0.0.1:6379/", t, t),
            Ok(Target::Single(_))
        ));
        assert!(matches!(
            Target::open("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", t, t),
            Ok(Target::Cluster(_))
        ));
        assert!(is_cluster_url("redis+cluster://a:1"));
        assert!(!is_cluster_url("redis://a:1"));
        assert!(Target::open("redis+cluster://", t, t).is_err());
        assert!(Target::open("nope://x", t, t).is_err());
    }
}
