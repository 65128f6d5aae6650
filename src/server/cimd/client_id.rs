//! The client identifier URL rules of
//! draft-ietf-oauth-client-id-metadata-document (section 3).

use reqwest::Url;

use super::document::MAX_URL_BYTES;
use super::CimdError;

/// Checks `client_id` against the draft's rules for a client identifier
/// URL: `https` (or `http` when `allow_http`), a host, a path, no fragment,
/// no user name or password, no `.` or `..` path segments (nor their
/// percent-encoded forms), and written in canonical form (what a URL parser
/// would print back), so that one client has one identifier.
pub fn check_client_id_url(client_id: &str, allow_http: bool) -> Result<Url, CimdError> {
    if client_id.len() > MAX_URL_BYTES {
        return Err(CimdError::BadUrl("longer than 1024 bytes"));
    }
    let rest = if let Some(rest) = client_id.strip_prefix("https://") {
        rest
    } else if let Some(rest) = client_id.strip_prefix("http://").filter(|_| allow_http) {
        rest
    } else {
        return Err(CimdError::BadUrl("the scheme must be https"));
    };
    if client_id.contains('#') {
        return Err(CimdError::BadUrl("it has a fragment"));
    }
    let Some(slash) = rest.find('/') else {
        return Err(CimdError::BadUrl("it has no path"));
    };
    let (authority, path_and_query) = rest.split_at(slash);
    if authority.contains('@') {
        return Err(CimdError::BadUrl("it has a user name or password"));
    }
    if authority.contains('?') {
        return Err(CimdError::BadUrl("it has no path"));
    }
    let path = path_and_query.split('?').next().unwrap_or_default();
    let dot = |seg: &str| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dot) {
        return Err(CimdError::BadUrl("it has dot segments"));
    }
    let url = Url::parse(client_id).map_err(|_| CimdError::BadUrl("it does not parse"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(CimdError::BadUrl("it has no host"));
    }
    if url.as_str() != client_id {
        return Err(CimdError::BadUrl("it is not in canonical form"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_urls_follow_the_draft() {
        for ok in [
            "https://app.example/client.json",
            "https://app.example:8443/oauth/metadata?v=1",
            "https://app.example/",
        ] {
            assert!(check_client_id_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/client.json",
            "https://app.example",
            "https://app.example/a#frag",
            "https://user:pw@app.example/c",
            "https://user@app.example/c",
            "https://app.example/a/../c",
            "https://app.example/a/./c",
            "https://app.example/a/%2E%2e/c",
            "https://APP.example/c",
            "https://app.example:443/c",
            "https://app.example/a b",
            "ftp://app.example/c",
            "app.example/c",
            "",
        ] {
            assert!(check_client_id_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_client_id_url("http://127.0.0.1:9/c", true).is_ok());
        let long = format!("https://app.example/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(
            check_client_id_url(&long, false),
            Err(CimdError::BadUrl("longer than 1024 bytes"))
        );
    }
}
