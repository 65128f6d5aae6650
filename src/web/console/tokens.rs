//! `GET /console/tokens`: live tokens, by agent and person.
//!
//! A token lives at most the issuer's `max_ttl`, and every mint is one
//! audit record (written with the ledger entry, in one store operation), so
//! the live tokens are among the mints of the last `max_ttl`: the page
//! reads [`PAGE_ROWS`] of those (filters `agent`, `person_issuer` +
//! `person_subject`, cursor `after`), looks each token up in the ledger for
//! its expiry, and shows those not yet expired, with whether they are
//! revoked. Bounded: one audit page and at most [`PAGE_ROWS`] ledger reads.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::audit::Filters;
use super::chrome::{console_page, next_link, query, store_error, when};
use super::{Operator, PAGE_ROWS};
use crate::records::{AuditKind, AuditOutcome};
use crate::server::AppState;
use crate::web::page::{html, ErrorPage, Markup};

const FIELDS: [(&str, &str); 3] = [
    ("agent", "Agent"),
    ("person_issuer", "Person's IdP"),
    ("person_subject", "Person"),
];

struct Live {
    token_id: String,
    person: String,
    chain: String,
    capability: String,
    issued: String,
    expires: String,
    revoked: bool,
}

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
    let now = state.now();
    let mut q = filters.to_query(PAGE_ROWS)?;
    q.kind = Some(AuditKind::Mint);
    q.outcome = Some(AuditOutcome::Granted);
    let window = chrono::Duration::seconds(state.config.max_ttl.0.as_secs() as i64);
    q.since = Some(now - window);
    q.until = None;
    let mints = state.stores.audit.query(&q).await.map_err(store_error)?;
    let mut by_agent: BTreeMap<String, Vec<Live>> = BTreeMap::new();
    for (_, e) in &mints {
        let Some(id) = &e.token_id else { continue };
        let Some(t) = state.stores.tokens.get(id).await.map_err(store_error)? else {
            continue;
        };
        if t.expires_at <= now {
            continue;
        }
        let revoked = state
            .stores
            .revocations
            .is_revoked(&t.revocation_id)
            .await
            .map_err(store_error)?;
        by_agent.entry(t.agent.to_string()).or_default().push(Live {
            token_id: t.token_id.clone(),
            person: e
                .person
                .as_ref()
                .map_or_else(|| "no person".to_owned(), ToString::to_string),
            chain: e.chain.join(" -> "),
            capability: e.capability.clone().unwrap_or_default(),
            issued: when(t.issued_at),
            expires: when(t.expires_at),
            revoked,
        });
    }
    let mut list = Markup::lit("<div id=\"tokens\">");
    for (agent, tokens) in &mut by_agent {
        tokens.sort_by(|a, b| a.person.cmp(&b.person).then(a.issued.cmp(&b.issued)));
        list.push(html(
            "<h2><code>{}</code></h2><ul class=\"cards\">",
            &[&agent.as_str()],
        ));
        for t in tokens.iter() {
            let badge = if t.revoked {
                Markup::lit("<span class=\"badge bad\">revoked</span>")
            } else {
                Markup::lit("<span class=\"badge ok\">live</span>")
            };
            list.push(html(
                "<li class=\"card token\"><p><code>{}</code> {}</p><dl>\
                 <dt>For</dt><dd>{}</dd><dt>Chain</dt><dd><code>{}</code></dd>\
                 <dt>May</dt><dd>{}</dd><dt>Issued</dt><dd>{}</dd><dt>Expires</dt><dd>{}</dd>\
                 </dl></li>",
                &[
                    &t.token_id,
                    &badge,
                    &t.person,
                    &t.chain,
                    &t.capability,
                    &t.issued,
                    &t.expires,
                ],
            ));
        }
        list.push(Markup::lit("</ul>"));
    }
    list.push(Markup::lit("</div>"));
    let empty = if by_agent.is_empty() {
        Markup::lit("<p class=\"muted\">No live token on this page.</p>")
    } else {
        Markup::default()
    };
    let next = (mints.len() == PAGE_ROWS)
        .then(|| mints.last().map(|(c, _)| filters.with_after(c)))
        .flatten();
    let body = html(
        "<p class=\"muted\">Tokens minted in the last {}s (the longest lifetime) that have not expired.</p>{}{}{}{}",
        &[
            &window.num_seconds(),
            &filters.form("/console/tokens", &FIELDS),
            &empty,
            &list,
            &next_link("/console/tokens", next),
        ],
    );
    Ok(console_page(state, op, "/console/tokens", "Tokens", body))
}
