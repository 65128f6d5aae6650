//! What every console page shares: the navigation, the operator's name
//! and sign-out button, store errors as error pages, small renderers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};

use super::Operator;
use crate::server::AppState;
use crate::store::StoreError;
use crate::web::page::{html, page, ErrorPage, Markup};
use crate::web::web;

/// The console's sections: path and title.
const SECTIONS: [(&str, &str); 6] = [
    ("/console", "Overview"),
    ("/console/agents", "Agents"),
    ("/console/tokens", "Tokens"),
    ("/console/approvals", "Approvals"),
    ("/console/revocations", "Revocations"),
    ("/console/audit", "Audit"),
];

/// A console page titled `title` (one of the sections, at `path`).
pub fn console_page(
    state: &AppState,
    op: &Operator,
    path: &str,
    title: &str,
    body: Markup,
) -> Response {
    let web = match web(state) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let mut nav = Markup::lit("<nav class=\"console\"><ul>");
    for (href, name) in SECTIONS {
        if href == path {
            nav.push(html(
                "<li><a href=\"{}\" aria-current=\"page\">{}</a></li>",
                &[&href, &name],
            ));
        } else {
            nav.push(html("<li><a href=\"{}\">{}</a></li>", &[&href, &name]));
        }
    }
    nav.push(Markup::lit("</ul></nav>"));
    let whole = html(
        "{}<p class=\"who\">Operator: <strong>{}</strong></p>{}<h1>{}</h1>{}",
        &[&nav, &op.name(), &op.sign_out_form(web), &title, &body],
    );
    page(title, whole)
}

/// A store error as a page: a cursor this store never handed out is the
/// caller's mistake (400); anything else, the store's (503).
pub fn store_error(e: StoreError) -> ErrorPage {
    match e {
        StoreError::InvalidCursor(_) => {
            ErrorPage::bad_request("the cursor (after=) is not one this page handed out")
        }
        other => {
            tracing::warn!(error = %other, "console: store error");
            ErrorPage::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store cannot be read right now; try again later",
            )
        }
    }
}

/// A time, to the second, in UTC.
pub fn when(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `value`, or a muted dash when absent.
pub fn or_dash(value: Option<&str>) -> Markup {
    match value {
        Some(v) if !v.is_empty() => Markup::text(v),
        _ => Markup::lit("<span class=\"muted\">–</span>"),
    }
}

/// A "Next page" link to `path?query` when `query` is given.
pub fn next_link(path: &'static str, query: Option<String>) -> Markup {
    match query {
        Some(q) => {
            let href = format!("{path}?{q}");
            html(
                "<p class=\"pager\"><a class=\"button secondary\" rel=\"next\" href=\"{}\">Next page</a></p>",
                &[&href],
            )
        }
        None => Markup::lit("<p class=\"pager muted\">End of the list.</p>"),
    }
}

/// A query parameter given as text: empty counts as absent; longer than
/// 1024 bytes is refused.
pub fn param(name: &str, value: Option<String>) -> Result<Option<String>, ErrorPage> {
    match value {
        Some(v) if v.len() > 1024 => Err(ErrorPage::bad_request(format!(
            "{name} is longer than 1024 bytes"
        ))),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => Ok(Some(v.trim().to_owned())),
        None => Ok(None),
    }
}

/// The query string of a page, parsed into `T`; a 400 page when malformed.
pub fn query<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Result<T, ErrorPage> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| ErrorPage::bad_request("the address of this page is malformed"))
}
