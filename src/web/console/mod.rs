//! The operator console: read-only, server-rendered pages over the stores
//! and the audit log (`docs/console.md`).
//!
//! - `GET /console`: counts, and the latest checkpoint of the audit log
//!   with whether it verifies ([`overview`]).
//! - `GET /console/agents`, `/console/tokens`, `/console/approvals`,
//!   `/console/revocations`, `/console/audit`: one listing each, bounded,
//!   with cursor paging where the store has cursors.
//! - `GET|POST /console/login`, `POST /console/logout`: the admin-token
//!   sign-in, only where no `[login]` is configured ([`signin`]).
//!
//! Who may look: with `[login]`, a person logged in through the IdP whose
//! groups claim holds `[console] operator_role`; without it, whoever signs
//! in with a valid admin token. Nobody else: no session is a redirect to
//! the login, a session without the role a 403 page. No page changes
//! anything but the sign-in cookie.

mod agents;
mod approvals;
mod audit;
mod chrome;
mod config;
mod operator;
mod overview;
mod revocations;
mod signin;
mod tokens;

use axum::routing::{get, post};
use axum::Router;

pub use config::ConsoleConfig;
pub use operator::{Operator, OPERATOR_COOKIE};

use crate::server::AppState;

/// Most rows of any console listing (a page; the rest is behind a cursor).
pub const PAGE_ROWS: usize = 50;

/// The console's routes (merged into [`super::routes`], under its
/// security headers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/agents", get(agents::page))
        .route("/console/tokens", get(tokens::page))
        .route("/console/approvals", get(approvals::page))
        .route("/console/revocations", get(revocations::page))
        .route("/console/audit", get(audit::page))
        .route("/console/login", get(signin::form).post(signin::sign_in))
        .route("/console/logout", post(signin::sign_out))
}
