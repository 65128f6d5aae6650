//! The views of the approval pages: one request with its approve / deny
//! form, the answer to a decision, and the person's list. Only
//! [`Markup`] goes out: every value of the request is escaped.

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};

use super::page::{html, page, page_with_status, Markup};
use crate::store::{Approval, ApprovalStatus, Verdict};

/// Where a request stands, in words, at `now`.
pub fn state_word(a: &Approval, now: DateTime<Utc>) -> &'static str {
    match a.status {
        ApprovalStatus::Pending if a.expired(now) => "expired",
        ApprovalStatus::Pending => "waiting for you",
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Denied => "denied",
        ApprovalStatus::Collected => "approved (the agent has its token)",
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `in 4 min 10 s` / `3 min ago`.
fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let words = |s: i64| match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    };
    if secs >= 0 {
        format!("in {}", words(secs))
    } else {
        format!("{} ago", words(-secs))
    }
}

/// The agents, oldest first, the one that asks last.
fn chain(a: &Approval) -> Markup {
    let mut m = Markup::lit("<ol class=\"chain\">");
    for agent in a.prior_actors.iter().chain(std::iter::once(&a.agent)) {
        m.push(html("<li><code>{}</code></li>", &[&agent.to_string()]));
    }
    m.push(Markup::lit("</ol>"));
    m
}

/// The facts of a request, as a definition list.
pub fn details(a: &Approval, now: DateTime<Utc>) -> Markup {
    let c = &a.capability;
    let mut m = Markup::lit("<dl id=\"request\">");
    if let Some(msg) = &a.binding_message {
        m.push(html(
            "<dt>Message</dt><dd id=\"binding-message\"><strong>{}</strong></dd>",
            &[msg],
        ));
    }
    m.push(html(
        "<dt>Agent</dt><dd id=\"agent-chain\">{}</dd>\
         <dt>Action</dt><dd id=\"action\"><code>{}</code></dd>\
         <dt>Resource</dt><dd id=\"resource\"><code>{}</code></dd>",
        &[&chain(a), &c.action.to_string(), &c.resource.to_string()],
    ));
    if let Some(aud) = &c.audience {
        m.push(html(
            "<dt>Service</dt><dd id=\"audience\"><code>{}</code></dd>",
            &[&aud.to_string()],
        ));
    }
    let amount = c
        .amount
        .as_ref()
        .map_or_else(|| "none named".to_owned(), ToString::to_string);
    m.push(html(
        "<dt>Amount</dt><dd id=\"amount\">{}</dd>\
         <dt>Token for</dt><dd>{} s</dd>\
         <dt>Asked</dt><dd>{}</dd>\
         <dt>Expires</dt><dd id=\"expires\">{} ({})</dd>\
         <dt>Status</dt><dd id=\"status\">{}</dd>",
        &[
            &amount,
            &c.ttl_secs,
            &time(a.created_at),
            &time(a.expires_at),
            &relative(a.expires_at, now),
            &state_word(a, now),
        ],
    ));
    if let (Some(by), Some(at)) = (&a.decided_by, a.decided_at) {
        m.push(html(
            "<dt>Decided</dt><dd>by {} at {}</dd>",
            &[by, &time(at)],
        ));
    }
    m.push(Markup::lit("</dl>"));
    m
}

/// The page of one request: its details, and the form while it can be
/// decided. An expired undecided request is shown with `410 Gone`.
pub fn request(a: &Approval, now: DateTime<Utc>, csrf: Markup) -> Response {
    let open = a.status == ApprovalStatus::Pending && !a.expired(now);
    let form = if open {
        html(
            "<p>Approve only if you expect this. The agent gets exactly this, once.</p>\
             <form method=\"post\" action=\"/approvals/{}\">{}\
             <button type=\"submit\" name=\"verdict\" value=\"approve\" id=\"approve\">Approve</button> \
             <button type=\"submit\" name=\"verdict\" value=\"deny\" id=\"deny\" class=\"secondary\">Deny</button>\
             </form>",
            &[&a.id, &csrf],
        )
    } else {
        Markup::lit("<p>This request can no longer be decided.</p>")
    };
    let body = html(
        "<h1>An agent asks for your approval</h1>{}{}<p><a href=\"/approvals\">All your approvals</a></p>",
        &[&details(a, now), &form],
    );
    let status = if a.status == ApprovalStatus::Pending && !open {
        StatusCode::GONE
    } else {
        StatusCode::OK
    };
    page_with_status(status, "Approval", body)
}

/// The answer to a decision just recorded.
pub fn decided(a: &Approval, verdict: Verdict) -> Response {
    let (title, what) = match verdict {
        Verdict::Approve => (
            "Approved",
            "You approved. The agent can now collect a token for exactly this.",
        ),
        Verdict::Deny => ("Denied", "You denied. The agent gets nothing."),
    };
    let body = html(
        "<h1 id=\"outcome\">{}</h1><p>{}</p>{}<p><a href=\"/approvals\">All your approvals</a></p>",
        &[
            &title,
            &what,
            &details(a, a.decided_at.unwrap_or(a.created_at)),
        ],
    );
    page(title, body)
}

/// The person's requests: pending ones first, then the past.
pub fn list(items: &[Approval], now: DateTime<Utc>) -> Response {
    let (pending, past): (Vec<&Approval>, Vec<&Approval>) = items
        .iter()
        .partition(|a| a.status == ApprovalStatus::Pending && !a.expired(now));
    let rows = |list: &[&Approval], id: &'static str| {
        if list.is_empty() {
            return html("<p id=\"{}\">none</p>", &[&id]);
        }
        let mut m = html("<ul id=\"{}\" class=\"approvals\">", &[&id]);
        for a in list {
            let amount = a
                .capability
                .amount
                .as_ref()
                .map(|x| format!(", {x}"))
                .unwrap_or_default();
            m.push(html(
                "<li><a href=\"/approvals/{}\"><code>{}</code> on <code>{}</code>{}</a> \
                 by <code>{}</code>: {}, expires {}</li>",
                &[
                    &a.id,
                    &a.capability.action.to_string(),
                    &a.capability.resource.to_string(),
                    &amount,
                    &a.agent.to_string(),
                    &state_word(a, now),
                    &time(a.expires_at),
                ],
            ));
        }
        m.push(Markup::lit("</ul>"));
        m
    };
    let body = html(
        "<h1>Your approvals</h1><h2>Pending</h2>{}<h2>Past</h2>{}",
        &[&rows(&pending, "pending"), &rows(&past, "past")],
    );
    page("Your approvals", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_in_words() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |s: i64| t + chrono::TimeDelta::seconds(s);
        assert_eq!(relative(at(250), t), "in 4 min 10 s");
        assert_eq!(relative(at(-5), t), "5 s ago");
        assert_eq!(relative(at(7300), t), "in 2 h 1 min");
    }
}
