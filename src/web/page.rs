//! Server-rendered HTML: [`Markup`], text that is safe to put in a page
//! because only literals and escaping functions make it, the page layout,
//! the security headers every page carries, and typed error pages.
//!
//! ```
//! use tessera::web::page::{html, Markup};
//! let name = "<script>alert(1)</script>";
//! let body = html("<p>Hello, {}!</p>", &[&name]);
//! assert_eq!(body.as_str(), "<p>Hello, &lt;script&gt;alert(1)&lt;/script&gt;!</p>");
//! ```

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy of every page: nothing but this origin's
/// stylesheet and images, forms posted only here, no framing, no scripts.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/static/tessera.css";

/// The one stylesheet of the pages (served at [`STYLESHEET_PATH`]).
pub const STYLESHEET: &str = include_str!("tessera.css");

/// HTML that is safe to send: built only from `&'static str` literals
/// ([`Markup::lit`]), escaped text ([`Markup::text`]) and other markup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markup(String);

impl Markup {
    /// A literal written in the source (never user text: it must be `'static`).
    pub fn lit(s: &'static str) -> Self {
        Self(s.to_owned())
    }

    /// `s`, escaped for element content and quoted attribute values.
    pub fn text(s: &str) -> Self {
        let mut out = String::with_capacity(s.len());
        escape_into(&mut out, s);
        Self(out)
    }

    /// Appends `other`.
    pub fn push(&mut self, other: impl Render) {
        other.render_into(&mut self.0);
    }

    /// The HTML text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The HTML text.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// What can go into a page: markup as is, anything else escaped.
pub trait Render {
    /// Appends the HTML form of `self` to `out`.
    fn render_into(&self, out: &mut String);
}

impl Render for Markup {
    fn render_into(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

impl Render for &Markup {
    fn render_into(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

impl Render for str {
    fn render_into(&self, out: &mut String) {
        escape_into(out, self);
    }
}

impl Render for &str {
    fn render_into(&self, out: &mut String) {
        escape_into(out, self);
    }
}

impl Render for String {
    fn render_into(&self, out: &mut String) {
        escape_into(out, self);
    }
}

macro_rules! render_display {
    ($($t:ty),*) => {$(
        impl Render for $t {
            fn render_into(&self, out: &mut String) {
                escape_into(out, &self.to_string());
            }
        }
    )*};
}
render_display!(u8, u16, u32, u64, usize, i32, i64);

/// Fills the `{}` holes of the literal `template`, in order, with `args`
/// (markup as is, text escaped). Missing arguments leave nothing; extra
/// ones are ignored.
pub fn html(template: &'static str, args: &[&dyn Render]) -> Markup {
    let mut out = String::with_capacity(template.len() + 64);
    let mut args = args.iter();
    let mut rest = template;
    while let Some(at) = rest.find("{}") {
        out.push_str(&rest[..at]);
        if let Some(a) = args.next() {
            a.render_into(&mut out);
        }
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    Markup(out)
}

/// Sets the headers every page and redirect of the web pages carries:
/// [`CSP`], `X-Content-Type-Options: nosniff`, `Referrer-Policy:
/// no-referrer`, `Cache-Control: no-store`, `X-Frame-Options: DENY`.
pub fn secure_headers(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
}

/// A response with [`secure_headers`] (for the web router's layer). A
/// Content-Security-Policy the handler set is kept (the consent page's
/// names where its form may send the browser next).
pub async fn with_secure_headers(mut response: Response) -> Response {
    let csp = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .cloned();
    secure_headers(response.headers_mut());
    if let Some(csp) = csp {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The layout around `body`, titled `title`.
pub fn layout(title: &str, body: Markup) -> Markup {
    html(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Tessera</title><link rel=\"stylesheet\" href=\"/static/tessera.css\">\
         </head><body><header><span class=\"brand\">Tessera</span></header>\
         <main>{}</main></body></html>\n",
        &[&title, &body],
    )
}

/// A `200 OK` page.
pub fn page(title: &str, body: Markup) -> Response {
    page_with_status(StatusCode::OK, title, body)
}

/// A page with `status`.
pub fn page_with_status(status: StatusCode, title: &str, body: Markup) -> Response {
    let mut r = (status, layout(title, body).into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(r.headers_mut());
    r
}

/// A refusal shown as a page: a status and a one-line reason (escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    /// The status.
    pub status: StatusCode,
    /// One line saying what went wrong and what to do.
    pub reason: String,
}

impl ErrorPage {
    /// An error page.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    /// `400 Bad Request`.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// `403 Forbidden`.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }
}

impl std::fmt::Display for ErrorPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.reason)
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = html(
            "<h1>{}</h1><p class=\"reason\">{}</p>",
            &[&title, &self.reason.as_str()],
        );
        page_with_status(self.status, title, body)
    }
}

/// `GET /static/tessera.css`.
pub async fn stylesheet() -> Response {
    let mut r = STYLESHEET.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// A `303 See Other` to `location` (a path of this origin or a URL the
/// caller built), with [`secure_headers`].
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            secure_headers(r.headers_mut());
            r
        }
        Err(_) => ErrorPage::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page to go to next cannot be named",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_literals_are_not() {
        let m = html(
            "<a href=\"{}\">{}</a>{}",
            &[&"/x?a=1&b=\"2\"", &"<b>'hi'</b>", &Markup::lit("<br>")],
        );
        assert_eq!(
            m.as_str(),
            "<a href=\"/x?a=1&amp;b=&quot;2&quot;\">&lt;b&gt;&#39;hi&#39;&lt;/b&gt;</a><br>"
        );
        let mut p = Markup::lit("<ul>");
        p.push("<li>");
        p.push(Markup::lit("</ul>"));
        assert_eq!(p.as_str(), "<ul>&lt;li&gt;</ul>");
        assert_eq!(html("{}{}", &[&7u32]).as_str(), "7");
    }

    #[test]
    fn a_page_carries_the_security_headers_and_an_error_page_its_status() {
        let r = ErrorPage::forbidden("no <b>").into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let h = r.headers();
        assert_eq!(h["content-security-policy"], CSP);
        assert!(!CSP.contains("script-src"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    }
}
