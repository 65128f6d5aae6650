//! `GET /console/revocations`: the revocation feed, [`PAGE_ROWS`] entries
//! a page, oldest first from the cursor `after`.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::{console_page, next_link, or_dash, param, query, store_error, when};
use super::{Operator, PAGE_ROWS};
use crate::records::Cursor;
use crate::server::AppState;
use crate::web::page::{html, ErrorPage, Markup};

#[derive(Debug, Deserialize)]
struct Params {
    after: Option<String>,
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
    let p: Params = query(raw)?;
    let after = param("after", p.after)?;
    if let Some(a) = &after {
        if a.len() > 64 || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ErrorPage::bad_request(
                "the cursor (after=) is not one this page handed out",
            ));
        }
    }
    let after = after.map(Cursor::new);
    let entries = state
        .stores
        .revocations
        .feed(after.as_ref(), PAGE_ROWS)
        .await
        .map_err(store_error)?;
    let mut list = Markup::lit("<ul class=\"cards\" id=\"revocations\">");
    for (_, r) in &entries {
        list.push(html(
            "<li class=\"card revocation\"><p><time>{}</time> · {}</p><dl>\
             <dt>Agent</dt><dd>{}</dd><dt>Token</dt><dd><code>{}</code></dd>\
             <dt>Revocation id</dt><dd><code>{}</code></dd><dt>Would expire</dt><dd>{}</dd></dl></li>",
            &[
                &when(r.revoked_at),
                &r.reason,
                &or_dash(r.agent.as_deref()),
                &or_dash(r.token_id.as_deref()),
                &r.revocation_id,
                &when(r.expires_at),
            ],
        ));
    }
    list.push(Markup::lit("</ul>"));
    let empty = if entries.is_empty() {
        Markup::lit("<p class=\"muted\">No revocation on this page.</p>")
    } else {
        Markup::default()
    };
    let next = (entries.len() == PAGE_ROWS)
        .then(|| {
            entries.last().map(|(c, _)| {
                serde_urlencoded::to_string([("after", c.as_str())]).unwrap_or_default()
            })
        })
        .flatten();
    let body = html(
        "{}{}{}",
        &[&empty, &list, &next_link("/console/revocations", next)],
    );
    Ok(console_page(
        state,
        op,
        "/console/revocations",
        "Revocations",
        body,
    ))
}
