//! The leaf bytes of audit records recomputed by independent code: Python's
//! standard library rebuilds them from each record's JSON (as
//! `GET /v1/audit` serves it) in the ~20 lines `docs/audit.md` shows, and
//! gets the same bytes and leaf hashes.

use std::io::Write;
use std::process::{Command, Stdio};

use tessera::store::{AuditEvent, AuditKind};
use tessera::tlog::merkle::leaf_hash;
use tessera::tlog::record::leaf_bytes;
use tessera::token::Person;

/// The recomputation of `docs/audit.md`, "Leaf bytes".
const PYTHON_LEAF: &str = r#"
import hashlib, json, sys, unicodedata

def leaf_bytes(record):
    record = dict(record)
    if record.get("reason") is not None:
        reason = record["reason"][:512]
        record["reason"] = "".join(
            " " if unicodedata.category(c) == "Cc" else c for c in reason)
    kept = {k: v for k, v in record.items() if v is not None and v != []}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b"\x01" + text.encode("utf-8")

for line in sys.stdin:
    leaf = leaf_bytes(json.loads(line))
    print(leaf.hex(), hashlib.sha256(b"\x00" + leaf).hexdigest())
"#;

fn events() -> Vec<AuditEvent> {
    let base = AuditEvent {
        at: "2026-03-04T05:06:07.123456Z".parse().unwrap(),
        kind: AuditKind::Mint,
        agent: Some("https://agents.example/alpha".into()),
        token_id: Some("tok-1".into()),
        capability: Some("read docs/*".into()),
        outcome: "granted".into(),
        reason: None,
        remote_addr: Some("127.0.0.1:1".into()),
        chain: vec!["https://agents.example/alpha".into()],
        person: None,
        amount: None,
        approval_id: None,
        revocation_ids: vec![],
        service: None,
    };
    let mut refused = base.clone();
    refused.kind = AuditKind::Refusal;
    refused.outcome = "refused".into();
    refused.reason = Some(format!(
        "bad \"quote\" \\ é 日本\n\t\u{7f}\u{85}{}",
        "x".repeat(600)
    ));
    refused.person = Some(Person::parse("https://login.example", "alice").unwrap());
    refused.revocation_ids = vec!["ab12".into(), "cd34".into()];
    refused.approval_id = Some("appr-1".into());
    refused.service = Some("https://tools.example/".into());
    let mut bare = base.clone();
    bare.agent = None;
    bare.token_id = None;
    bare.chain = vec![];
    bare.outcome = "some future outcome".into();
    let mut spent = base.clone();
    spent.kind = AuditKind::Decision;
    spent.outcome = tessera::records::AuditOutcome::BudgetCommitted;
    spent.capability = Some("spend reservation=r-1 budgets=b1-00ff".into());
    spent.amount = Some(tessera::token::Amount::parse("12.50EUR").unwrap());
    vec![base, refused, bare, spent]
}

#[test]
fn python_recomputes_the_leaf_bytes_and_hashes_from_the_records_json() {
    let Some(python) = crate::python::python_with("json", "audit leaf interop test") else {
        return;
    };
    let events = events();
    let input: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    let mut child = Command::new(&python)
        .args(["-c", PYTHON_LEAF])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), events.len());
    for (event, line) in events.iter().zip(&lines) {
        let leaf = leaf_bytes(event).unwrap();
        let expected = format!("{} {}", hex::encode(&leaf), hex::encode(leaf_hash(&leaf)));
        assert_eq!(line, &expected, "{event:?}");
    }
}
