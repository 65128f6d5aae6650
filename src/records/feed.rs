//! The pages the issuer's admin API serves: the revocation feed
//! (`GET /v1/revocations`) and the audit log (`GET /v1/audit`).
//!
//! The issuer builds them and the verifier's HTTP follower reads them, so
//! the JSON shape is written once, here:
//!
//! - feed: `{"entries": [{"cursor": "…", "revocation": {…}}], "next": "…" | null}`
//! - audit: `{"events": [{"cursor": "…", "event": {…}}], "next": "…" | null}`

use serde::{Deserialize, Serialize};

use super::{AuditEvent, Cursor, Revocation};

/// One entry of the revocation feed: where it is and what was revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// The entry's position; resume after it with `?after=`.
    pub cursor: Cursor,
    /// The revocation.
    pub revocation: Revocation,
}

/// A page of the revocation feed.
///
/// `E` is the entry type: [`FeedEntry`] for the issuer, which writes
/// well-formed entries; a reader that must skip a malformed entry rather
/// than refuse the whole page parses `FeedPage<serde_json::Value>` and
/// then each entry on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPage<E = FeedEntry> {
    /// The entries, oldest first.
    pub entries: Vec<E>,
    /// Where to resume: the last entry's cursor, else the `after` asked
    /// for; `null` when the feed is empty and no cursor was given.
    pub next: Option<Cursor>,
}

/// One event of the audit log and its position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The event's position; resume after it with `?after=`.
    pub cursor: Cursor,
    /// The event.
    pub event: AuditEvent,
}

/// A page of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The events, oldest first.
    pub events: Vec<AuditEntry>,
    /// The last event's cursor; `null` when the page is empty.
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::records::AuditKind;

    fn revocation() -> Revocation {
        Revocation {
            revocation_id: "ab".repeat(64),
            token_id: Some("t1".into()),
            agent: None,
            reason: "gone".into(),
            revoked_at: DateTime::UNIX_EPOCH,
            expires_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_feed_page_is_the_documented_json() {
        let page = FeedPage {
            entries: vec![FeedEntry {
                cursor: Cursor::new("0001"),
                revocation: revocation(),
            }],
            next: Some(Cursor::new("0001")),
        };
        let value = serde_json::to_value(&page).unwrap();
        assert_eq!(
            value,
            json!({
                "entries": [{"cursor": "0001", "revocation": serde_json::to_value(revocation()).unwrap()}],
                "next": "0001",
            })
        );
        assert_eq!(serde_json::from_value::<FeedPage>(value).unwrap(), page);
        let empty = FeedPage::<FeedEntry> {
            entries: vec![],
            next: None,
        };
        assert_eq!(
            serde_json::to_value(empty).unwrap(),
            json!({"entries": [], "next": null})
        );
    }

    #[test]
    fn an_audit_page_is_the_documented_json() {
        // (Every field written out, as the verifier's audit tests do: the
        // test pins the JSON of each one.)
        let event = AuditEvent {
            at: DateTime::UNIX_EPOCH,
            kind: AuditKind::Mint,
            agent: None,
            token_id: None,
            capability: None,
            outcome: "granted".into(),
            reason: None,
            remote_addr: None,
            chain: vec![],
            person: None,
            amount: None,
            approval_id: None,
            revocation_ids: Vec::new(),
            service: None,
        };
        let page = AuditPage {
            events: vec![AuditEntry {
                cursor: Cursor::new("7"),
                event: event.clone(),
            }],
            next: Some(Cursor::new("7")),
        };
        let value = serde_json::to_value(&page).unwrap();
        assert_eq!(value["events"][0]["cursor"], "7");
        assert_eq!(value["events"][0]["event"]["outcome"], "granted");
        assert_eq!(value["next"], "7");
        assert_eq!(value.as_object().unwrap().len(), 2);
        assert_eq!(serde_json::from_value::<AuditPage>(value).unwrap(), page);
    }
}
