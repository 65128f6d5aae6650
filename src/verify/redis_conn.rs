//! The verifier's Redis connections (the revocation follower's and the
//! audit sink's): one server, or a Redis Cluster for a
//! `redis+cluster://[user:password@]host:port[,host:port…]` URL
//! (`rediss+cluster://` for TLS), the same URLs the issuer's store takes
//! (parsed once, in [`crate::redis_conn`]).

use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::cluster::ClusterClient;
use ::redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError};

use crate::redis_conn::{cluster_client, cluster_nodes};

/// A connection to one server (multiplexed, of the caller's own) or to a
/// cluster.
pub(crate) type Conn = crate::redis_conn::Conn<MultiplexedConnection>;

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
            Some(nodes) => cluster_client(nodes, connect, respond)
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

/// Whether `url` names a Redis Cluster (`redis+cluster://…`).
pub(crate) fn is_cluster_url(url: &str) -> bool {
    cluster_nodes(url).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

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
