//! The leaf bytes of an audit record: a version byte, then the record as
//! canonical JSON (see `docs/audit.md`, "Leaf bytes").
//!
//! Version 1 is `0x01` followed by the UTF-8 JSON of the [`AuditEvent`]
//! with, at the top level, every field that is `null` or an empty list
//! left out, object keys sorted by code point at every depth, no
//! whitespace, strings escaped as JSON requires (`"`, `\` and control
//! characters; everything else written as is) and the reason sanitized:
//! control characters replaced by spaces and cut to [`MAX_REASON_CHARS`]
//! characters. An auditor recomputes the bytes with Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.

use serde_json::Value;

use crate::records::AuditEvent;

/// The version byte of the leaf encoding described above.
pub const RECORD_VERSION: u8 = 0x01;

/// The longest reason a record keeps, in characters.
pub const MAX_REASON_CHARS: usize = 512;

/// `reason` with each control character replaced by a space, cut to
/// [`MAX_REASON_CHARS`] characters.
pub fn sanitize_reason(reason: &str) -> String {
    reason
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("audit record cannot be encoded: {0}")]
pub struct RecordError(String);

/// The leaf bytes of `event` (version 1).
pub fn leaf_bytes(event: &AuditEvent) -> Result<Vec<u8>, RecordError> {
    let mut event = event.clone();
    event.reason = event.reason.as_deref().map(sanitize_reason);
    let value = serde_json::to_value(&event).map_err(|e| RecordError(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(RecordError("not a JSON object".to_owned()));
    };
    let mut kept: Vec<(String, Value)> = fields
        .into_iter()
        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = vec![RECORD_VERSION];
    write_object(&mut out, kept.iter().map(|(k, v)| (k.as_str(), v)))?;
    Ok(out)
}

/// The record inside leaf bytes, for display; `None` if they are not a
/// version-1 record this version can read.
pub fn decode_leaf(bytes: &[u8]) -> Option<AuditEvent> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => {
            let mut value: Value = serde_json::from_slice(json).ok()?;
            // Empty lists are left out of the leaf bytes.
            let fields = value.as_object_mut()?;
            fields
                .entry("chain")
                .or_insert_with(|| Value::Array(Vec::new()));
            serde_json::from_value(value).ok()
        }
        _ => None,
    }
}

fn write_object<'a>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'a str, &'a Value)>,
) -> Result<(), RecordError> {
    out.push(b'{');
    for (i, (key, value)) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, key)?;
        out.push(b':');
        write_value(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_string(out: &mut Vec<u8>, text: &str) -> Result<(), RecordError> {
    serde_json::to_writer(&mut *out, text).map_err(|e| RecordError(e.to_string()))
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), RecordError> {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&str, &Value)> =
                map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            write_object(out, fields.into_iter())
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
            Ok(())
        }
        Value::Number(n) if n.is_f64() => Err(RecordError("a fractional number".to_owned())),
        other => serde_json::to_writer(&mut *out, other).map_err(|e| RecordError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AuditKind, AuditOutcome};

    fn event() -> AuditEvent {
        AuditEvent {
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            kind: AuditKind::Mint,
            agent: Some("agent://a".into()),
            token_id: None,
            capability: Some("read".into()),
            outcome: AuditOutcome::Granted,
            reason: Some("bad\nline\u{7}".into()),
            remote_addr: None,
            chain: vec![],
            person: None,
            amount: None,
            approval_id: None,
            revocation_ids: vec![],
            service: None,
        }
    }

    #[test]
    fn leaf_bytes_are_versioned_sorted_without_empty_fields_and_sanitized() {
        let bytes = leaf_bytes(&event()).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(
            std::str::from_utf8(&bytes[1..]).unwrap(),
            r#"{"agent":"agent://a","at":"2026-01-02T03:04:05Z","capability":"read","kind":"mint","outcome":"granted","reason":"bad line "}"#
        );
        let back = decode_leaf(&bytes).unwrap();
        assert_eq!(back.reason.as_deref(), Some("bad line "));
        assert!(decode_leaf(&[2, b'{', b'}']).is_none());
    }

    #[test]
    fn reasons_are_bounded() {
        let long = "é".repeat(MAX_REASON_CHARS + 10);
        assert_eq!(sanitize_reason(&long).chars().count(), MAX_REASON_CHARS);
    }
}
