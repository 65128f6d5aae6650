//! `GET /consents`: the consents the person asked to remember, one per
//! (client, MCP server), each with a "Withdraw" button; `POST
//! /consents/withdraw` (CSRF): forgets the consent and revokes every
//! refresh family started under it, with the access tokens minted in them.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::csrf::Form;
use super::page::{html, page, see_other, ErrorPage, Markup};
use super::session::{LoggedIn, Session};
use super::{refused, web};
use crate::server::authcode::revoke_family;
use crate::server::AppState;
use crate::token::Audience;

/// The CSRF purpose of the withdraw forms.
const PURPOSE: &str = "consents";

fn store_down() -> ErrorPage {
    ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store cannot be reached; try again later",
    )
}

/// `GET /consents`.
pub async fn list(State(state): State<AppState>, LoggedIn(session): LoggedIn) -> Response {
    match render(&state, &session).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn render(state: &AppState, session: &Session) -> Result<Response, ErrorPage> {
    let web = web(state)?;
    let consents = state
        .stores
        .authcodes
        .remembered(&session.person)
        .await
        .map_err(|_| store_down())?;
    let mut items = Markup::default();
    for c in &consents {
        let scopes = c
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        items.push(html(
            "<li class=\"consent\"><p><code class=\"client\">{}</code> at \
             <code class=\"resource\">{}</code></p><p>Tools: <code class=\"scopes\">{}</code> \
             <span class=\"muted\">since {}</span></p>\
             <form method=\"post\" action=\"/consents/withdraw\">{}\
             <input type=\"hidden\" name=\"client_id\" value=\"{}\">\
             <input type=\"hidden\" name=\"resource\" value=\"{}\">\
             <button type=\"submit\" class=\"secondary\">Withdraw</button></form></li>",
            &[
                &c.client_id.as_str(),
                &c.resource.as_str(),
                &scopes,
                &c.granted_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                &web.csrf_field(session, PURPOSE),
                &c.client_id.as_str(),
                &c.resource.as_str(),
            ],
        ));
    }
    let list = if consents.is_empty() {
        Markup::lit("<p id=\"none\">You have no remembered consents.</p>")
    } else {
        html("<ul class=\"consents\">{}</ul>", &[&items])
    };
    let body = html(
        "<h1>Your consents</h1>\
         <p>Applications you allowed to act for you without asking again. \
         Withdrawing one also ends the sessions it started.</p>{}\
         <p class=\"muted\">Signed in as <strong>{}</strong></p>",
        &[&list, &session.person.subject()],
    );
    Ok(page("Your consents", body))
}

/// `POST /consents/withdraw` with `client_id` and `resource`.
pub async fn withdraw(
    State(state): State<AppState>,
    LoggedIn(session): LoggedIn,
    headers: HeaderMap,
    form: Form,
) -> Response {
    match run(&state, &session, &headers, &form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response, ErrorPage> {
    let web = web(state)?;
    web.check_post(headers, session, PURPOSE, form)
        .inspect_err(|_| refused(state, "csrf"))?;
    let client_id = form
        .one("client_id")
        .ok_or_else(|| ErrorPage::bad_request("client_id is missing"))?;
    let resource = form
        .one("resource")
        .and_then(|r| Audience::parse(r).ok())
        .ok_or_else(|| ErrorPage::bad_request("resource is missing or malformed"))?;
    let store = &state.stores.authcodes;
    let consents = store
        .remembered(&session.person)
        .await
        .map_err(|_| store_down())?;
    let Some(consent) = consents
        .iter()
        .find(|c| c.client_id == client_id && c.resource == resource)
    else {
        return Err(ErrorPage::new(
            StatusCode::NOT_FOUND,
            "you have no remembered consent for this application and server",
        ));
    };
    // Revoke first: if the store fails half-way, the consent is still
    // listed and withdrawing it again finishes the job.
    for family in &consent.families {
        revoke_family(state, family, "consent withdrawn by the person")
            .await
            .map_err(|_| store_down())?;
    }
    store
        .forget(&session.person, client_id, &resource)
        .await
        .map_err(|_| store_down())?;
    tracing::info!(person = %session.person, client = %client_id, "consent withdrawn");
    Ok(see_other("/consents"))
}
