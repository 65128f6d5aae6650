//! One Redis connection type for the issuer's store and the verifier: one
//! server or a Redis Cluster, chosen by the URL.
//!
//! A `redis+cluster://[user:password@]host:port[,host:port…]` URL
//! (`rediss+cluster://` for TLS) names a cluster; any other URL one server.
//! The store and the verifier keep their own single-server connection
//! (`S`): the store a connection manager that reconnects by itself, the
//! verifier's follower and audit sink a multiplexed connection each that
//! they rebuild themselves. Everything else is here, once.

use std::time::Duration;

use ::redis::aio::ConnectionLike;
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to one server (`S`) or to a cluster, used as one
/// [`ConnectionLike`]. Cheap to clone when `S` is.
#[derive(Clone)]
pub(crate) enum Conn<S> {
    /// One server.
    Single(S),
    /// A Redis Cluster: each command goes to the node serving its keys,
    /// following redirections after a failover.
    Cluster(ClusterConnection),
}

impl<S: ConnectionLike + Send> ConnectionLike for Conn<S> {
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

/// The node URLs of a `redis+cluster://` URL, or `None` for a one-server
/// URL. An empty list (`redis+cluster://` with no host) is the caller's
/// to refuse.
pub(crate) fn cluster_nodes(url: &str) -> Option<Vec<String>> {
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

/// A cluster client for `nodes`: `connect` bounds connecting to a node,
/// `respond` each answer; a command is retried twice (a redirection or a
/// node failing over).
pub(crate) fn cluster_client(
    nodes: Vec<String>,
    connect: Duration,
    respond: Duration,
) -> RedisResult<ClusterClient> {
    ClusterClient::builder(nodes)
        .connection_timeout(connect)
        .response_timeout(respond)
        .retries(2)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_their_nodes_with_the_credentials() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379/"), None);
        assert_eq!(cluster_nodes("http+cluster://a:1"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@a:1,b:2/").unwrap(),
            ["redis://u:p@a:1/", "redis://u:p@b:2/"]
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://a:1").unwrap(),
            ["rediss://a:1/"]
        );
        assert_eq!(
            cluster_nodes("redis+cluster://").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_cluster_client_is_built_for_listed_nodes() {
        let t = Duration::from_secs(1);
        let nodes = cluster_nodes("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap();
        assert!(cluster_client(nodes, t, t).is_ok());
        assert!(cluster_client(Vec::new(), t, t).is_err());
    }
}
