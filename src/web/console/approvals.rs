//! `GET /console/approvals`: requests for a person's approval, pending and
//! decided. Each request is one `approval requested` audit record; the page
//! reads [`PAGE_ROWS`] of those (filters `agent`, `person_issuer` +
//! `person_subject`, `since`, `until`, cursor `after`) and looks each up in
//! the approval store for where it stands now (a request dropped after its
//! expiry shows as such).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::audit::{chain, Filters};
use super::chrome::{console_page, next_link, query, store_error, when};
use super::{Operator, PAGE_ROWS};
use crate::records::{AuditKind, AuditOutcome};
use crate::server::AppState;
use crate::store::ApprovalStatus;
use crate::web::page::{html, ErrorPage, Markup};

const FIELDS: [(&str, &str); 5] = [
    ("agent", "Agent"),
    ("person_issuer", "Person's IdP"),
    ("person_subject", "Person"),
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
    let now = state.now();
    let mut q = filters.to_query(PAGE_ROWS)?;
    q.kind = Some(AuditKind::Approval);
    q.outcome = Some(AuditOutcome::ApprovalRequested);
    let asked = state.stores.audit.query(&q).await.map_err(store_error)?;
    let mut list = Markup::lit("<ul class=\"cards\" id=\"approvals\">");
    for (_, e) in &asked {
        let Some(id) = &e.approval_id else { continue };
        let approval = state.stores.approvals.get(id).await.map_err(store_error)?;
        let (status, class, decided) = match &approval {
            None => ("dropped".to_owned(), "", String::new()),
            Some(a) if a.status == ApprovalStatus::Pending && a.expires_at <= now => {
                ("expired".to_owned(), "bad", String::new())
            }
            Some(a) => {
                let class = match a.status {
                    ApprovalStatus::Pending => "",
                    ApprovalStatus::Denied => "bad",
                    ApprovalStatus::Approved | ApprovalStatus::Collected => "ok",
                };
                let decided = match (&a.decided_by, a.decided_at) {
                    (Some(by), Some(at)) => format!("by {by} at {}", when(at)),
                    _ => String::new(),
                };
                (a.status.as_str().to_owned(), class, decided)
            }
        };
        let message = approval
            .as_ref()
            .and_then(|a| a.binding_message.clone())
            .unwrap_or_default();
        list.push(html(
            "<li class=\"card approval\"><p><span class=\"badge {}\">{}</span> {}</p>{}\
             <dl><dt>Asked</dt><dd>{}</dd><dt>Message</dt><dd>{}</dd><dt>Id</dt><dd><code>{}</code></dd></dl></li>",
            &[
                &class,
                &status,
                &decided,
                &chain(e),
                &when(e.at),
                &message,
                &id.as_str(),
            ],
        ));
    }
    list.push(Markup::lit("</ul>"));
    let empty = if asked.is_empty() {
        Markup::lit("<p class=\"muted\">No request for approval matches.</p>")
    } else {
        Markup::default()
    };
    let next = (asked.len() == PAGE_ROWS)
        .then(|| asked.last().map(|(c, _)| filters.with_after(c)))
        .flatten();
    let body = html(
        "{}{}{}{}",
        &[
            &filters.form("/console/approvals", &FIELDS),
            &empty,
            &list,
            &next_link("/console/approvals", next),
        ],
    );
    Ok(console_page(
        state,
        op,
        "/console/approvals",
        "Approvals",
        body,
    ))
}
