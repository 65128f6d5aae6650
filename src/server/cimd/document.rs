//! The metadata document: the `client_id` URL rules and the checked fields.
//!
//! Rules from draft-ietf-oauth-client-id-metadata-document (section 3, the
//! client identifier URL; section 4, the document) and the MCP
//! authorization specification's section on Client ID Metadata Documents.

use reqwest::Url;
use serde::Deserialize;

use super::CimdError;
use crate::people::IdpKeys;

/// Longest `client_id` URL, bytes.
pub const MAX_URL_BYTES: usize = 1024;
/// Longest `client_name` shown, characters (longer ones are cut).
pub const MAX_NAME_CHARS: usize = 80;
/// Most `redirect_uris`.
pub const MAX_REDIRECT_URIS: usize = 16;
/// Most `grant_types` or `response_types`.
pub const MAX_TYPES: usize = 8;
/// Longest `scope`, bytes.
pub const MAX_SCOPE_BYTES: usize = 1024;

/// How the client authenticates at the token endpoint. Shared-secret
/// methods have no variant: a public document cannot hold a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A public client (`none`): PKCE alone binds the code to it. Also what
    /// a document without `token_endpoint_auth_method` gets.
    None,
    /// A JWT signed with a key of the document's `jwks` or `jwks_uri`
    /// (RFC 7523).
    PrivateKeyJwt,
}

/// A checked Client ID Metadata Document.
#[derive(Debug, Clone)]
pub struct ClientMetadata {
    /// The URL the document was fetched from, equal to its `client_id`.
    pub client_id: String,
    /// The name to show, control characters removed, at most
    /// [`MAX_NAME_CHARS`] characters; `None` when absent or empty.
    pub client_name: Option<String>,
    /// The client's home page (an https URL), if given.
    pub client_uri: Option<String>,
    /// The client's logo URL (an https URL), if given. Never fetched by
    /// Tessera.
    pub logo_uri: Option<String>,
    /// Where authorization responses may go; compare exactly. At least one.
    pub redirect_uris: Vec<String>,
    /// How the client authenticates at the token endpoint.
    pub token_endpoint_auth_method: AuthMethod,
    /// The client's public keys (`jwks`), for `private_key_jwt`.
    pub jwks: Option<IdpKeys>,
    /// Where the client's public keys are (`jwks_uri`, https), for
    /// `private_key_jwt`; not fetched here.
    pub jwks_uri: Option<String>,
    /// `grant_types` (default `["authorization_code"]`).
    pub grant_types: Vec<String>,
    /// `response_types` (default `["code"]`).
    pub response_types: Vec<String>,
    /// `scope`: the scopes the client may ask for, space separated, if
    /// given.
    pub scope: Option<String>,
}

impl ClientMetadata {
    /// Whether `uri` is exactly one of the document's `redirect_uris`.
    pub fn allows_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether the document lists `grant_type` in `grant_types`.
    pub fn allows_grant_type(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// Parses and checks the document fetched from `client_id`.
    pub fn from_document(client_id: &str, body: &[u8]) -> Result<Self, CimdError> {
        let raw: RawDocument = serde_json::from_slice(body).map_err(|_| CimdError::Json)?;
        if raw.client_id.as_deref() != Some(client_id) {
            return Err(CimdError::ClientIdMismatch);
        }
        if raw.client_secret.is_some() || raw.client_secret_expires_at.is_some() {
            return Err(CimdError::SecretAuth);
        }
        let token_endpoint_auth_method = match raw.token_endpoint_auth_method.as_deref() {
            None | Some("none") => AuthMethod::None,
            Some("private_key_jwt") => AuthMethod::PrivateKeyJwt,
            Some(m) if m.starts_with("client_secret") => return Err(CimdError::SecretAuth),
            Some(_) => return Err(CimdError::AuthMethod),
        };
        let jwks = match &raw.jwks {
            None => None,
            Some(value) => {
                let text = value.to_string();
                Some(
                    IdpKeys::from_jwks_json(&text)
                        .map_err(|_| CimdError::Field("jwks", "not a usable JWK set"))?,
                )
            }
        };
        let jwks_uri = raw
            .jwks_uri
            .as_deref()
            .map(|u| https_url(u, "jwks_uri"))
            .transpose()?;
        if token_endpoint_auth_method == AuthMethod::PrivateKeyJwt
            && jwks.is_some() == jwks_uri.is_some()
        {
            return Err(CimdError::Keys);
        }
        let redirect_uris = raw.redirect_uris.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(CimdError::Field(
                "redirect_uris",
                "at least one is required",
            ));
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(CimdError::Field("redirect_uris", "too many"));
        }
        for uri in &redirect_uris {
            check_redirect_uri(uri)?;
        }
        let grant_types = types(raw.grant_types, "grant_types", "authorization_code")?;
        let response_types = types(raw.response_types, "response_types", "code")?;
        if let Some(scope) = &raw.scope {
            if scope.len() > MAX_SCOPE_BYTES || scope.chars().any(|c| c.is_control()) {
                return Err(CimdError::Field("scope", "too long or not printable"));
            }
        }
        Ok(Self {
            client_id: client_id.to_owned(),
            client_name: raw.client_name.as_deref().and_then(display_name),
            client_uri: raw
                .client_uri
                .as_deref()
                .map(|u| https_url(u, "client_uri"))
                .transpose()?,
            logo_uri: raw
                .logo_uri
                .as_deref()
                .map(|u| https_url(u, "logo_uri"))
                .transpose()?,
            redirect_uris,
            token_endpoint_auth_method,
            jwks,
            jwks_uri,
            grant_types,
            response_types,
            scope: raw.scope.filter(|s| !s.trim().is_empty()),
        })
    }
}

/// The fields Tessera reads; others are ignored. `client_secret` is read
/// only to refuse it.
#[derive(Deserialize)]
struct RawDocument {
    client_id: Option<String>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    client_secret: Option<serde::de::IgnoredAny>,
    client_secret_expires_at: Option<serde::de::IgnoredAny>,
}

/// An absolute https URL without user or fragment, at most
/// [`MAX_URL_BYTES`].
fn https_url(value: &str, field: &'static str) -> Result<String, CimdError> {
    let bad = || CimdError::Field(field, "must be an https URL without fragment or user");
    if value.len() > MAX_URL_BYTES {
        return Err(CimdError::Field(field, "longer than 1024 bytes"));
    }
    let url = Url::parse(value).map_err(|_| bad())?;
    if url.scheme() != "https"
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.host_str().is_none()
    {
        return Err(bad());
    }
    Ok(value.to_owned())
}

/// A redirect URI: absolute, no fragment, at most [`MAX_URL_BYTES`], not a
/// scheme that runs or reads something in the browser.
fn check_redirect_uri(uri: &str) -> Result<(), CimdError> {
    if uri.len() > MAX_URL_BYTES {
        return Err(CimdError::Field("redirect_uris", "longer than 1024 bytes"));
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(CimdError::Field("redirect_uris", "not printable"));
    }
    let url =
        Url::parse(uri).map_err(|_| CimdError::Field("redirect_uris", "not an absolute URI"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(CimdError::Field("redirect_uris", "has a fragment"));
    }
    if matches!(
        url.scheme(),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about"
    ) {
        return Err(CimdError::Field("redirect_uris", "scheme not allowed"));
    }
    if matches!(url.scheme(), "http" | "https") && url.host_str().is_none_or(str::is_empty) {
        return Err(CimdError::Field("redirect_uris", "has no host"));
    }
    Ok(())
}

/// A bounded list of short printable words, `default` when absent.
fn types(
    value: Option<Vec<String>>,
    field: &'static str,
    default: &str,
) -> Result<Vec<String>, CimdError> {
    let Some(list) = value else {
        return Ok(vec![default.to_owned()]);
    };
    if list.len() > MAX_TYPES {
        return Err(CimdError::Field(field, "too many"));
    }
    if list
        .iter()
        .any(|t| t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(CimdError::Field(field, "not short printable words"));
    }
    Ok(list)
}

/// The name to show: control and format characters (bidirectional
/// overrides, zero-width) removed, whitespace runs folded to one space, at
/// most [`MAX_NAME_CHARS`] characters; `None` if nothing is left.
pub fn display_name(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut space = false;
    for c in name.chars() {
        if c.is_control() || is_format(c) {
            continue;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        if out.chars().count() >= MAX_NAME_CHARS {
            break;
        }
        out.push(c);
    }
    (!out.is_empty()).then_some(out)
}

/// Unicode format characters that change how text around them is shown.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_control_and_format_characters_and_are_bounded() {
        assert_eq!(
            display_name("  My\u{202e}  App\n\t\u{0007} "),
            Some("My App".into())
        );
        assert_eq!(display_name("\u{200b}\u{0000}"), None);
        let long = display_name(&"é".repeat(500)).unwrap();
        assert_eq!(long.chars().count(), MAX_NAME_CHARS);
    }

    fn doc(extra: serde_json::Value) -> Vec<u8> {
        let mut base = serde_json::json!({
            "client_id": "https://app.example/c.json",
            "client_name": "App",
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_vec(&base).unwrap()
    }

    #[test]
    fn documents_are_checked() {
        let id = "https://app.example/c.json";
        let ok = ClientMetadata::from_document(id, &doc(serde_json::json!({}))).unwrap();
        assert_eq!(ok.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!(ok.grant_types, ["authorization_code"]);
        assert!(ok.allows_redirect_uri("http://127.0.0.1:3000/callback"));
        assert!(!ok.allows_redirect_uri("http://127.0.0.1:3000/callback/"));
        let cases = [
            (
                serde_json::json!({"client_id": "https://app.example/other"}),
                CimdError::ClientIdMismatch,
            ),
            (
                serde_json::json!({"token_endpoint_auth_method": "client_secret_basic"}),
                CimdError::SecretAuth,
            ),
            (
                serde_json::json!({"token_endpoint_auth_method": "client_secret_post"}),
                CimdError::SecretAuth,
            ),
            (
                serde_json::json!({"client_secret": "s"}),
                CimdError::SecretAuth,
            ),
            (
                serde_json::json!({"token_endpoint_auth_method": "tls_client_auth"}),
                CimdError::AuthMethod,
            ),
            (
                serde_json::json!({"token_endpoint_auth_method": "private_key_jwt"}),
                CimdError::Keys,
            ),
            (
                serde_json::json!({"redirect_uris": []}),
                CimdError::Field("redirect_uris", "at least one is required"),
            ),
            (
                serde_json::json!({"redirect_uris": ["/relative"]}),
                CimdError::Field("redirect_uris", "not an absolute URI"),
            ),
            (
                serde_json::json!({"redirect_uris": ["https://a.example/cb#x"]}),
                CimdError::Field("redirect_uris", "has a fragment"),
            ),
            (
                serde_json::json!({"redirect_uris": ["javascript:alert(1)"]}),
                CimdError::Field("redirect_uris", "scheme not allowed"),
            ),
            (
                serde_json::json!({"client_uri": "http://app.example/"}),
                CimdError::Field(
                    "client_uri",
                    "must be an https URL without fragment or user",
                ),
            ),
            (
                serde_json::json!({"redirect_uris": "https://a.example/cb"}),
                CimdError::Json,
            ),
        ];
        for (extra, want) in cases {
            let got = ClientMetadata::from_document(id, &doc(extra.clone())).unwrap_err();
            assert_eq!(got, want, "{extra}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("https://a.example/{i}")).collect();
        assert_eq!(
            ClientMetadata::from_document(id, &doc(serde_json::json!({ "redirect_uris": many })))
                .unwrap_err(),
            CimdError::Field("redirect_uris", "too many")
        );
        let jwt = ClientMetadata::from_document(
            id,
            &doc(serde_json::json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example/jwks"})),
        )
        .unwrap();
        assert_eq!(jwt.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
        assert_eq!(
            ClientMetadata::from_document(id, b"[1,2").unwrap_err(),
            CimdError::Json
        );
    }
}
