//! `GET /console/agents`: registered agents and their ceilings,
//! [`MAX_AGENTS`] a page by id (`after`: the last id of the page before).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::{console_page, next_link, param, query, store_error, when};
use super::Operator;
use crate::server::AppState;
use crate::store::AgentRecord;
use crate::web::page::{html, Markup};

/// Most agents a page.
pub const MAX_AGENTS: usize = 100;

fn joined<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        return "any".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn card(a: &AgentRecord) -> Markup {
    let state = if a.disabled {
        Markup::lit("<span class=\"badge bad\">disabled</span>")
    } else {
        Markup::lit("<span class=\"badge ok\">active</span>")
    };
    html(
        "<li class=\"card agent\"><h2><code>{}</code> {}</h2>{}\
         <dl><dt>Actions</dt><dd>{}</dd><dt>Resources</dt><dd><code>{}</code></dd>\
         <dt>Audiences</dt><dd>{}</dd><dt>Longest token</dt><dd>{}s</dd>\
         <dt>Registered</dt><dd>{}</dd><dt>Changed</dt><dd>{}</dd></dl>\
         <p><a href=\"/console/tokens?agent={}\">Live tokens</a> · \
         <a href=\"/console/audit?agent={}\">Audit records</a></p></li>",
        &[
            &a.id.as_str(),
            &state,
            &description(&a.description),
            &joined(&a.ceiling.actions),
            &joined(&a.ceiling.resources),
            &joined(&a.ceiling.audiences),
            &a.ceiling.max_ttl.as_secs(),
            &when(a.created_at),
            &when(a.updated_at),
            &encoded(a.id.as_str()),
            &encoded(a.id.as_str()),
        ],
    )
}

fn description(d: &str) -> Markup {
    if d.is_empty() {
        Markup::default()
    } else {
        html("<p class=\"muted\">{}</p>", &[&d])
    }
}

/// `s` percent-encoded for a query value.
pub(super) fn encoded(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
struct Params {
    after: Option<String>,
}

pub(super) async fn page(
    State(state): State<AppState>,
    op: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let after = match query::<Params>(raw.as_deref()).and_then(|p| param("after", p.after)) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let agents = match state
        .stores
        .agents
        .list_page(after.as_deref(), MAX_AGENTS)
        .await
    {
        Ok(a) => a,
        Err(e) => return store_error(e).into_response(),
    };
    let mut list = Markup::lit("<ul class=\"cards\" id=\"agents\">");
    for a in &agents {
        list.push(card(a));
    }
    list.push(Markup::lit("</ul>"));
    let note = if agents.is_empty() {
        Markup::lit("<p class=\"muted\">No agent is registered (after this point).</p>")
    } else {
        Markup::lit("<p class=\"muted\">Agents by id.</p>")
    };
    let next = (agents.len() == MAX_AGENTS)
        .then(|| {
            agents.last().map(|a| {
                serde_urlencoded::to_string([("after", a.id.as_str())]).unwrap_or_default()
            })
        })
        .flatten();
    let list = html("{}{}", &[&list, &next_link("/console/agents", next)]);
    console_page(
        &state,
        &op,
        "/console/agents",
        "Agents",
        html("{}{}", &[&note, &list]),
    )
}
