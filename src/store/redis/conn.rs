//! The store's connection: one server (a connection manager) or a Redis
//! Cluster (the redis crate's cluster connection), behind one type.

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, Value};

/// A cheap-to-clone handle on the shared connection.
///
/// (`store::redis::conn` and `verify::redis_conn` each write this enum and
/// the `redis+cluster://` parsing: the verifier builds without the store,
/// and the two hold different single-server connections. One generic copy
/// in a module shared by both features is the next step, issue 10.)
#[derive(Clone)]
pub(super) enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster: each command goes to the node serving its keys.
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

/// The node URLs of a `redis+cluster://[user:password@]host:port[,host:port…]`
/// URL (`rediss+cluster://` for TLS), or `None` for a one-server URL.
pub(super) fn cluster_nodes(url: &str) -> Option<Vec<String>> {
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

/// Whether a `ROLE` reply is a master's with at least one replica
/// connected: `[master, offset, [[ip, port, offset], …]]`.
pub(super) fn has_replicas(role: &Value) -> bool {
    match role {
        Value::Array(parts) => {
            matches!(parts.get(2), Some(Value::Array(replicas)) if !replicas.is_empty())
        }
        _ => false,
    }
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
            cluster_nodes("redis+cluster://a:1").unwrap(),
            ["redis://a:1/"]
        );
    }

    #[test]
    fn role_replies_with_replicas_are_told_apart() {
        let master = |replicas: Vec<Value>| {
            Value::Array(vec![
                Value::BulkString(b"master".to_vec()),
                Value::Int(0),
                Value::Array(replicas),
            ])
        };
        assert!(!has_replicas(&master(vec![])));
        assert!(has_replicas(&master(vec![Value::Array(vec![])])));
        assert!(!has_replicas(&Value::Nil));
    }
}
