//! The store's connection: one server (a connection manager, which
//! reconnects by itself) or a Redis Cluster, behind one type
//! ([`crate::redis_conn`], shared with the verifier).

use ::redis::aio::ConnectionManager;
use ::redis::Value;

/// A cheap-to-clone handle on the shared connection.
pub(super) type Conn = crate::redis_conn::Conn<ConnectionManager>;

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
