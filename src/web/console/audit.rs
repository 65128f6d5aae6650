//! `GET /console/audit`: the audit timeline, [`PAGE_ROWS`] records a page,
//! oldest first from the cursor, each drawn as person -> agent ->
//! sub-agents -> action on resource -> outcome. Filters (query string):
//! `person_issuer` + `person_subject`, `agent` (anywhere in the chain),
//! `kind`, `outcome`, `since`, `until` (RFC 3339), `after` (the cursor of
//! the "Next page" link). A malformed filter, time window or cursor is a
//! 400 page.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::chrome::{console_page, or_dash, param, query, store_error, when};
use super::{Operator, PAGE_ROWS};
use crate::records::{AuditEvent, AuditKind, AuditOutcome, AuditQuery, Cursor};
use crate::server::AppState;
use crate::token::Person;
use crate::web::page::{html, ErrorPage, Markup};

/// The filters of the audit and tokens pages, as given.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    person_issuer: Option<String>,
    person_subject: Option<String>,
    agent: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<String>,
}

/// Most bytes of a cursor (both stores' cursors are far shorter).
const MAX_CURSOR: usize = 64;

fn time(name: &str, v: Option<String>) -> Result<Option<DateTime<Utc>>, ErrorPage> {
    param(name, v)?
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ErrorPage::bad_request(format!(
                        "{name} is not an RFC 3339 time (for example 2026-01-31T12:00:00Z)"
                    ))
                })
        })
        .transpose()
}

impl Filters {
    /// The store query of these filters, or a 400 page naming what is wrong.
    pub(super) fn to_query(&self, limit: usize) -> Result<AuditQuery, ErrorPage> {
        let issuer = param("person_issuer", self.person_issuer.clone())?;
        let subject = param("person_subject", self.person_subject.clone())?;
        let person = match (issuer, subject) {
            (None, None) => None,
            (Some(i), Some(s)) => Some(
                Person::parse(&i, &s)
                    .map_err(|e| ErrorPage::bad_request(format!("person: {e}")))?,
            ),
            _ => {
                return Err(ErrorPage::bad_request(
                    "give both person_issuer and person_subject, or neither",
                ))
            }
        };
        let kind = param("kind", self.kind.clone())?
            .map(|k| {
                serde_json::from_value::<AuditKind>(serde_json::Value::String(k))
                    .map_err(|_| ErrorPage::bad_request("kind is not a known audit kind"))
            })
            .transpose()?;
        let since = time("since", self.since.clone())?;
        let until = time("until", self.until.clone())?;
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(ErrorPage::bad_request("since must be before until"));
            }
        }
        let after = param("after", self.after.clone())?;
        if let Some(a) = &after {
            let plausible = a.len() <= MAX_CURSOR
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plausible {
                return Err(ErrorPage::bad_request(
                    "the cursor (after=) is not one this page handed out",
                ));
            }
        }
        Ok(AuditQuery {
            person,
            after: after.map(Cursor::new),
            in_chain: param("agent", self.agent.clone())?,
            kind,
            outcome: param("outcome", self.outcome.clone())?.map(AuditOutcome::from),
            since,
            until,
            limit,
            ..AuditQuery::default()
        })
    }

    /// The query string of these filters with `after` set to `cursor`.
    pub(super) fn with_after(&self, cursor: &Cursor) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("person_issuer", &self.person_issuer),
            ("person_subject", &self.person_subject),
            ("agent", &self.agent),
            ("kind", &self.kind),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .chain(std::iter::once(("after", cursor.as_str())))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The value of filter `name` as given (for refilling the form).
    fn given(&self, name: &str) -> &str {
        let v = match name {
            "person_issuer" => &self.person_issuer,
            "person_subject" => &self.person_subject,
            "agent" => &self.agent,
            "kind" => &self.kind,
            "outcome" => &self.outcome,
            "since" => &self.since,
            "until" => &self.until,
            _ => &None,
        };
        v.as_deref().unwrap_or("")
    }

    /// The filter form (GET: it changes nothing).
    pub(super) fn form(
        &self,
        action: &'static str,
        fields: &[(&'static str, &'static str)],
    ) -> Markup {
        let mut m = html(
            "<form method=\"get\" action=\"{}\" class=\"filters\">",
            &[&action],
        );
        for (name, label) in fields {
            m.push(html(
                "<label>{} <input name=\"{}\" value=\"{}\"></label>",
                &[label, name, &self.given(name)],
            ));
        }
        m.push(Markup::lit(
            "<button type=\"submit\">Filter</button></form>",
        ));
        m
    }
}

/// The record's chain: person -> agent -> sub-agents -> action on
/// resource -> outcome.
pub(super) fn chain(e: &AuditEvent) -> Markup {
    let mut steps: Vec<Markup> = Vec::new();
    if let Some(p) = &e.person {
        steps.push(html("<span class=\"person\">{}</span>", &[&p.to_string()]));
    }
    let person_text = e.person.as_ref().map(ToString::to_string);
    let mut actors: Vec<&str> = e
        .chain
        .iter()
        .map(String::as_str)
        .filter(|a| {
            Some(*a) != person_text.as_deref() && Some(*a) != e.person.as_ref().map(|p| p.subject())
        })
        .collect();
    if actors.is_empty() {
        if let Some(a) = &e.agent {
            actors.push(a);
        }
    }
    for a in actors {
        steps.push(html("<span class=\"agent\"><code>{}</code></span>", &[&a]));
    }
    if let Some(c) = &e.capability {
        steps.push(html("<span class=\"action\">{}</span>", &[&c.as_str()]));
    }
    let class = match e.outcome {
        AuditOutcome::Refused | AuditOutcome::Denied | AuditOutcome::ApprovalDenied => "bad",
        AuditOutcome::Granted | AuditOutcome::ApprovalApproved => "ok",
        _ => "",
    };
    steps.push(html(
        "<span class=\"outcome {}\">{}</span>",
        &[&class, &e.outcome.as_str()],
    ));
    let mut m = Markup::lit("<p class=\"chain\">");
    for (i, s) in steps.into_iter().enumerate() {
        if i > 0 {
            m.push(Markup::lit(" <span class=\"arrow\">-&gt;</span> "));
        }
        m.push(s);
    }
    m.push(Markup::lit("</p>"));
    m
}

fn kind_name(k: AuditKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn record(cursor: &Cursor, e: &AuditEvent) -> Markup {
    let amount = e.amount.as_ref().map(ToString::to_string);
    html(
        "<li class=\"card record\"><p class=\"meta\"><time>{}</time> · {} · <span class=\"muted\">#{}</span></p>{}\
         <dl><dt>Token</dt><dd><code>{}</code></dd><dt>Reason</dt><dd>{}</dd>\
         <dt>Amount</dt><dd>{}</dd><dt>Approval</dt><dd><code>{}</code></dd>\
         <dt>Service</dt><dd>{}</dd><dt>From</dt><dd>{}</dd></dl></li>",
        &[
            &when(e.at),
            &kind_name(e.kind),
            &cursor.as_str(),
            &chain(e),
            &or_dash(e.token_id.as_deref()),
            &or_dash(e.reason.as_deref()),
            &or_dash(amount.as_deref()),
            &or_dash(e.approval_id.as_deref()),
            &or_dash(e.service.as_deref()),
            &or_dash(e.remote_addr.as_deref()),
        ],
    )
}

const FIELDS: [(&str, &str); 7] = [
    ("agent", "Agent"),
    ("person_issuer", "Person's IdP"),
    ("person_subject", "Person"),
    ("kind", "Kind"),
    ("outcome", "Outcome"),
    ("since", "Since"),
    ("until", "Until"),
];

pub(super) async fn page(
    State(state): State<AppState>,
    op: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    match render(&state, &op, raw.as_deref()).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn render(state: &AppState, op: &Operator, raw: Option<&str>) -> Result<Response, ErrorPage> {
    let filters: Filters = query(raw)?;
    let q = filters.to_query(PAGE_ROWS)?;
    let events = state.stores.audit.query(&q).await.map_err(store_error)?;
    let mut list = Markup::lit("<ol class=\"cards timeline\" id=\"records\">");
    for (c, e) in &events {
        list.push(record(c, e));
    }
    list.push(Markup::lit("</ol>"));
    let empty = if events.is_empty() {
        Markup::lit("<p class=\"muted\">No record matches.</p>")
    } else {
        Markup::default()
    };
    let next = (events.len() == PAGE_ROWS)
        .then(|| events.last().map(|(c, _)| filters.with_after(c)))
        .flatten();
    let body = html(
        "{}{}{}{}",
        &[
            &filters.form("/console/audit", &FIELDS),
            &empty,
            &list,
            &super::chrome::next_link("/console/audit", next),
        ],
    );
    Ok(console_page(state, op, "/console/audit", "Audit", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(f: impl FnOnce(&mut Filters)) -> Result<AuditQuery, ErrorPage> {
        let mut x = Filters::default();
        f(&mut x);
        x.to_query(10)
    }

    #[test]
    fn malformed_times_windows_cursors_and_kinds_are_refused() {
        assert!(filters(|f| f.since = Some("yesterday".into())).is_err());
        assert!(filters(|f| {
            f.since = Some("2026-01-02T00:00:00Z".into());
            f.until = Some("2026-01-01T00:00:00Z".into());
        })
        .is_err());
        assert!(filters(|f| f.after = Some("1;DROP".into())).is_err());
        assert!(filters(|f| f.kind = Some("nope".into())).is_err());
        assert!(filters(|f| f.person_subject = Some("alice".into())).is_err());
        let q = filters(|f| {
            f.kind = Some("mint".into());
            f.agent = Some("agent://a".into());
            f.after = Some("12".into());
        })
        .unwrap();
        assert_eq!(q.kind, Some(AuditKind::Mint));
        assert_eq!(q.in_chain.as_deref(), Some("agent://a"));
        assert_eq!(q.limit, 10);
    }

    #[test]
    fn the_chain_reads_person_agents_action_outcome_and_escapes() {
        let e = AuditEvent {
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            kind: AuditKind::Mint,
            agent: Some("agent://sub".into()),
            token_id: None,
            capability: Some("docs:read on <x>".into()),
            outcome: AuditOutcome::Granted,
            reason: None,
            remote_addr: None,
            chain: vec!["agent://top".into(), "agent://sub".into()],
            person: Some(Person::parse("https://idp.example", "alice").unwrap()),
            amount: None,
            approval_id: None,
            revocation_ids: vec![],
            service: None,
        };
        let m = chain(&e).into_string();
        let a = m.find("alice").unwrap();
        let t = m.find("agent://top").unwrap();
        let s = m.find("agent://sub").unwrap();
        let c = m.find("docs:read on &lt;x&gt;").unwrap();
        let o = m.find("granted").unwrap();
        assert!(a < t && t < s && s < c && c < o, "{m}");
    }
}
