//! `tessera audit`: reads the issuer's audit log (`GET /v1/audit`), and
//! its subcommands export and verify the tamper-evident log
//! (`docs/audit.md`).

use clap::{Args, Subcommand};

use super::issuer::{admin_token_text, check, client, runtime, send_err, url, AdminConn};
use super::{emit, to_json, Failure};
use crate::records::AuditPage;
use crate::token::{AgentId, Person};

/// `tessera audit`: a query (the flags below), or a subcommand.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    #[command(flatten)]
    query: QueryArgs,
}

/// `tessera audit <subcommand>`.
#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Download the audit key, the latest signed checkpoint and every leaf
    /// up to it into a directory (for `tessera audit verify`).
    Export(super::audit_export::ExportArgs),
    /// Check a downloaded log against its signed checkpoint (and an older
    /// one), offline. Exit 0 when it verifies, 1 with each finding when not.
    Verify(super::audit_verify::VerifyArgs),
    /// Check that one leaf is in the issuer's signed checkpoint (a proof
    /// from the live issuer, checked here).
    Inclusion(super::audit_proof::InclusionArgs),
    /// Check that an older log is a prefix of the issuer's signed
    /// checkpoint (a proof from the live issuer, checked here).
    Consistency(super::audit_proof::ConsistencyArgs),
}

/// The query flags of `tessera audit`. (The connection is spelled out,
/// as in [`AdminConn`], with `Option`s: with a subcommand these flags are
/// absent, and clap still builds this struct.)
#[derive(Debug, Args)]
struct QueryArgs {
    /// Issuer URL.
    #[arg(long, value_name = "URL", env = "TESSERA_ISSUER", required = true)]
    issuer: Option<String>,
    /// Admin token (or a file holding it).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TESSERA_ADMIN_TOKEN",
        hide_env_values = true,
        required = true
    )]
    admin_token: Option<String>,
    /// Only events about this agent.
    #[arg(long, value_name = "URI")]
    agent: Option<AgentId>,
    /// Only events about a person: their identity provider's issuer URL
    /// (with --person).
    #[arg(long, value_name = "URL", requires = "person")]
    person_issuer: Option<String>,
    /// Only events about a person: their subject (with --person-issuer).
    #[arg(long, value_name = "SUB", requires = "person_issuer")]
    person: Option<String>,
    /// Only events about this token id.
    #[arg(long, value_name = "ID")]
    token_id: Option<String>,
    /// Only events whose agent chain names this agent anywhere (the agent,
    /// or one it delegated through).
    #[arg(long, value_name = "URI")]
    chain_agent: Option<AgentId>,
    /// Only events about a token with this revocation id (hex): the token
    /// and every token attenuated or delegated from it.
    #[arg(long, value_name = "HEX")]
    revocation_id: Option<String>,
    /// Only events of this kind (mint, exchange, revocation, admin, ...).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Only events with this outcome (as printed, e.g. granted, denied).
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<String>,
    /// Only events at or after this time (RFC 3339, e.g. 2026-12-01T09:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    until: Option<String>,
    /// Only events after this cursor (the `next` of an earlier page).
    #[arg(long, value_name = "CURSOR")]
    after: Option<String>,
    /// At most this many events (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// Print the page as JSON (events and `next`).
    #[arg(long)]
    json: bool,
}

/// An RFC 3339 time, as typed (the issuer parses it again).
fn rfc3339(s: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|_| s.to_owned())
        .map_err(|_| format!("{s:?} is not an RFC 3339 time (as in 2026-12-01T09:00:00Z)"))
}

/// Who did what: `person -> agent -> sub-agent -> capability -> outcome`
/// (the parts the event knows).
fn story(e: &crate::records::AuditEvent) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(p) = &e.person {
        parts.push(format!("for {p}"));
    }
    if e.chain.is_empty() {
        parts.extend(e.agent.clone());
    } else {
        parts.extend(e.chain.iter().cloned());
    }
    parts.extend(e.capability.clone());
    parts.push(e.outcome.to_string());
    parts.join(" -> ")
}

/// One line per event: cursor, time, kind, outcome, then what is known.
fn line(entry: &crate::records::AuditEntry) -> String {
    let e = &entry.event;
    let kind = serde_json::to_value(e.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut out = format!(
        "{} {} {kind} {}",
        entry.cursor,
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        e.outcome
    );
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push_str(&format!(" {name}={v:?}"));
        }
    };
    field("person", e.person.as_ref().map(ToString::to_string));
    field("agent", e.agent.clone());
    field("token_id", e.token_id.clone());
    field("capability", e.capability.clone());
    field("reason", e.reason.clone());
    field("story", Some(story(e)));
    out
}

/// `tessera audit`.
pub fn audit(args: AuditArgs) -> Result<(), Failure> {
    match args.command {
        Some(AuditCommand::Export(a)) => super::audit_export::export(a),
        Some(AuditCommand::Verify(a)) => super::audit_verify::verify(a),
        Some(AuditCommand::Inclusion(a)) => super::audit_proof::inclusion(a),
        Some(AuditCommand::Consistency(a)) => super::audit_proof::consistency(a),
        None => query(args.query),
    }
}

/// `tessera audit [filters]`.
fn query(args: QueryArgs) -> Result<(), Failure> {
    let (Some(issuer), Some(admin_token)) = (args.issuer.clone(), args.admin_token.clone()) else {
        return Err(Failure::new("give --issuer and --admin-token"));
    };
    let conn = AdminConn {
        issuer,
        admin_token,
    };
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    if let Some(agent) = &args.agent {
        query.push(("agent", agent.to_string()));
    }
    if let (Some(issuer), Some(subject)) = (&args.person_issuer, &args.person) {
        let person = Person::parse(issuer, subject)?;
        query.push(("person_issuer", person.issuer().to_owned()));
        query.push(("person_subject", person.subject().to_owned()));
    }
    if let Some(token_id) = &args.token_id {
        query.push(("token_id", token_id.clone()));
    }
    if let Some(agent) = &args.chain_agent {
        query.push(("chain_agent", agent.to_string()));
    }
    let optional = [
        ("revocation_id", &args.revocation_id),
        ("kind", &args.kind),
        ("outcome", &args.outcome),
        ("since", &args.since),
        ("until", &args.until),
        ("after", &args.after),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    runtime()?.block_on(async move {
        let resp = client()?
            .get(url(&conn.issuer, "/v1/audit"))
            .bearer_auth(admin_token_text(&conn.admin_token)?)
            .query(&query)
            .send()
            .await
            .map_err(send_err(&conn.issuer))?;
        let body = check(resp).await?;
        if args.json {
            return emit(&format!("{}\n", to_json(&body)?));
        }
        let page: AuditPage = serde_json::from_value(body)
            .map_err(|e| Failure::new(format!("unexpected audit page: {e}")))?;
        let mut text = String::new();
        for entry in &page.events {
            text.push_str(&line(entry));
            text.push('\n');
        }
        if let Some(next) = &page.next {
            text.push_str(&format!("next {next}\n"));
        }
        emit(&text)
    })
}
