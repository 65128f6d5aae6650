//! Why a Client ID Metadata Document was refused.

use crate::server::error::{ApiError, OAuthCode};

/// Why a `client_id` URL or its metadata document was refused. Each variant
/// maps to an OAuth error code ([`CimdError::oauth_error`]); its `Display`
/// is a one-line reason that never repeats the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    /// Client ID Metadata Documents are turned off (`[clients]
    /// metadata_documents = false`).
    #[error("client metadata documents are not accepted by this server")]
    Disabled,
    /// The `client_id` is not a URL the draft allows (https, a path, no
    /// fragment, no user or password, no dot segments, canonical form).
    #[error("client_id is not a valid metadata document URL: {0}")]
    BadUrl(&'static str),
    /// The host has no address.
    #[error("the client_id host does not resolve")]
    Resolve,
    /// The host resolves to an address Tessera may not fetch from
    /// (loopback, private, link-local, ...).
    #[error("the client_id host resolves to a non-public address")]
    ForbiddenAddress,
    /// No answer within the fetch timeout.
    #[error("the client metadata document did not arrive in time")]
    Timeout,
    /// The connection failed.
    #[error("the client metadata document could not be fetched")]
    Unreachable,
    /// The server answered a redirect (never followed).
    #[error("the client metadata document URL answered a redirect ({0}), which is not followed")]
    Redirect(u16),
    /// The server answered another status than 200.
    #[error("the client metadata document URL answered status {0}")]
    Status(u16),
    /// The answer is not `application/json`.
    #[error("the client metadata document is not application/json")]
    ContentType,
    /// The document is larger than the bound.
    #[error("the client metadata document is larger than {0} bytes")]
    TooLarge(usize),
    /// The document is not a JSON object of metadata.
    #[error("the client metadata document is not a valid JSON metadata object")]
    Json,
    /// The document's `client_id` is not exactly the URL it was fetched from.
    #[error("the client metadata document's client_id differs from its URL")]
    ClientIdMismatch,
    /// The document names a shared-secret authentication method or holds a
    /// `client_secret`: a public document cannot keep a secret.
    #[error("a client metadata document cannot use a client secret")]
    SecretAuth,
    /// The document names an authentication method other than `none` and
    /// `private_key_jwt`.
    #[error("token_endpoint_auth_method must be none or private_key_jwt")]
    AuthMethod,
    /// `private_key_jwt` without `jwks` or `jwks_uri`, or with both.
    #[error("private_key_jwt needs exactly one of jwks and jwks_uri")]
    Keys,
    /// A field is missing, of the wrong type or out of bounds.
    #[error("client metadata field {0}: {1}")]
    Field(&'static str, &'static str),
    /// Too many fetches now; try again later. Not remembered.
    #[error("too many client metadata fetches; try again later")]
    Busy,
}

impl CimdError {
    /// The OAuth error code: `invalid_request` when the request may succeed
    /// later unchanged ([`CimdError::Busy`]), `invalid_client` otherwise.
    pub fn oauth_error(&self) -> OAuthCode {
        match self {
            Self::Busy => OAuthCode::InvalidRequest,
            _ => OAuthCode::InvalidClient,
        }
    }

    /// A short typed code for metrics and the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "cimd_disabled",
            Self::BadUrl(_) => "cimd_bad_url",
            Self::Resolve => "cimd_resolve",
            Self::ForbiddenAddress => "cimd_forbidden_address",
            Self::Timeout => "cimd_timeout",
            Self::Unreachable => "cimd_unreachable",
            Self::Redirect(_) => "cimd_redirect",
            Self::Status(_) => "cimd_status",
            Self::ContentType => "cimd_content_type",
            Self::TooLarge(_) => "cimd_too_large",
            Self::Json => "cimd_json",
            Self::ClientIdMismatch => "cimd_client_id_mismatch",
            Self::SecretAuth => "cimd_secret_auth",
            Self::AuthMethod => "cimd_auth_method",
            Self::Keys => "cimd_keys",
            Self::Field(..) => "cimd_field",
            Self::Busy => "cimd_busy",
        }
    }
}

impl From<CimdError> for ApiError {
    /// The OAuth error of [`CimdError::oauth_error`] with the one-line
    /// reason. (At `/oauth/authorize` an invalid client gets an error page,
    /// never a redirect: RFC 6749 section 4.1.2.1.)
    fn from(e: CimdError) -> Self {
        ApiError::oauth(e.oauth_error(), e.to_string())
    }
}
