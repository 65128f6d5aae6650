//! A registered agent's `redirect_uris`: where `/oauth/authorize` may send
//! its authorization codes (compared exactly, as given).
//!
//! Each is an absolute `https://` URL, or `http://` on a loopback host
//! (`localhost`, `127.0.0.0/8`, `[::1]`: a native client's listener,
//! RFC 8252 §7.3), with a host, without credentials, fragment, whitespace
//! or control characters; at most [`MAX_REDIRECT_URIS`] of at most
//! [`MAX_REDIRECT_URI_LEN`] bytes. Repeats are dropped.

/// Most redirect URIs one agent may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 1024;

/// The list checked, in order, without repeats; or a one-line reason.
pub fn check_redirect_uris(list: &[String]) -> Result<Vec<String>, String> {
    if list.len() > MAX_REDIRECT_URIS {
        return Err(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris may be registered"
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for uri in list {
        check_one(uri)?;
        if !out.contains(uri) {
            out.push(uri.clone());
        }
    }
    Ok(out)
}

fn check_one(uri: &str) -> Result<(), String> {
    if uri.is_empty() || uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!(
            "each redirect_uri must be 1 to {MAX_REDIRECT_URI_LEN} bytes"
        ));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a redirect_uri must not contain whitespace or control characters".into());
    }
    let parsed =
        reqwest::Url::parse(uri).map_err(|e| format!("a redirect_uri is not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a redirect_uri must not hold credentials".into());
    }
    if parsed.fragment().is_some() {
        return Err("a redirect_uri must not have a fragment".into());
    }
    let Some(host) = parsed.host_str() else {
        return Err("a redirect_uri needs a host".into());
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("a redirect_uri must be https, or http on a loopback host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(list: &[&str]) -> Result<Vec<String>, String> {
        check_redirect_uris(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn https_and_loopback_http_pass_as_given() {
        let ok = check(&[
            "https://app.example/cb?x=1",
            "http://127.0.0.1:5000/cb",
            "http://[::1]/cb",
            "http://localhost:8000",
            "https://app.example/cb?x=1",
        ])
        .unwrap();
        assert_eq!(ok.len(), 4);
        assert_eq!(
            ok[3], "http://localhost:8000",
            "kept as given, not normalized"
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "/cb",
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "https://app.example/cb#",
            "https://user:pw@app.example/cb",
            "https://app.example/cb\n",
            " https://app.example/cb",
            "javascript:alert(1)",
            "file:///etc/passwd",
        ] {
            assert!(check(&[bad]).is_err(), "{bad:?}");
        }
        let long = format!("https://app.example/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
        assert!(check(&[&long]).is_err());
        let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
            .map(|i| format!("https://app.example/{i}"))
            .collect();
        assert!(check_redirect_uris(&many).is_err());
    }
}
