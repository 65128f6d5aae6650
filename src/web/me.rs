//! `GET /me`: who is signed in, their groups and roles, and a logout
//! button: the smoke test of the web kit.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::page::{html, page, Markup};
use super::session::{rights, LoggedIn};
use super::web;
use crate::server::AppState;

pub(super) async fn me(State(state): State<AppState>, LoggedIn(session): LoggedIn) -> Response {
    let web = match web(&state) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let list = |items: &mut dyn Iterator<Item = String>| {
        let mut m = Markup::lit("<ul class=\"tags\">");
        let mut any = false;
        for i in items {
            any = true;
            m.push(html("<li>{}</li>", &[&i]));
        }
        m.push(Markup::lit("</ul>"));
        if any {
            m
        } else {
            Markup::lit("<p>none</p>")
        }
    };
    let groups = list(&mut session.groups.iter().cloned());
    let roles = match rights(&state, &session).await {
        Ok(r) => list(&mut r.names().into_iter().map(|n| n.to_string())),
        Err(_) => Markup::lit("<p>unavailable (the store cannot be reached)</p>"),
    };
    let body = html(
        "<h1>Signed in</h1>\
         <p id=\"who\">Signed in as <strong>{}</strong> at <code>{}</code></p>\
         <h2>Groups</h2>{}<h2>Roles</h2>{}\
         <form method=\"post\" action=\"/logout\">{}<button type=\"submit\">Sign out</button></form>",
        &[
            &session.person.subject(),
            &session.person.issuer(),
            &groups,
            &roles,
            &web.csrf_field(&session, "logout"),
        ],
    );
    page("Signed in", body)
}
