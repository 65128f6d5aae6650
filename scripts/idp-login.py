#!/usr/bin/env python3
"""Log a test person in at the test identity provider and save their ID token.

The stand-in for "the person logs in in their browser": it drives the
authorization-code flow with PKCE of tests/idp/provider.mjs (a real
oidc-provider) over plain HTTP, as a browser would: the login form, the
consent form, the redirect with the code, and the code exchanged at the token
endpoint. The ID token is written to a file (mode 0600), never printed.

    node tests/idp/provider.mjs 8094 &            # after npm ci --prefix tests/idp
    .venv/bin/python scripts/idp-login.py --idp http://127.0.0.1:8094 \\
        --person alice --out alice.idtoken

It knows the test provider's conventions: its people (alice, bob) log in
with any password, so the fixed test password is sent unless
--password-file names a file holding one; its clients' secrets are
`<client_id>-secret` unless --client-secret-file names a file holding one.
Errors are one line on standard error, and the exit status is 1.
"""

import argparse
import base64
import hashlib
import html
import json
import os
import re
import secrets
import sys
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

# What the test provider's clients redirect to (nothing listens there: the
# code is read from the Location header, as the browser's address bar would).
REDIRECT_URI = "http://127.0.0.1/callback"
# The test provider accepts any password for its test people.
TEST_PASSWORD = "test"
TIMEOUT_SECS = 10
MAX_STEPS = 10


class Failure(Exception):
    """An error reported as one line on standard error."""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def read_secret(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as e:
        raise Failure(f"cannot read the {what} file {path}: {e.strerror}") from e
    if not value:
        raise Failure(f"the {what} file {path} is empty")
    return value


def get_json(http, url):
    try:
        resp = http.get(url, timeout=TIMEOUT_SECS)
    except requests.RequestException as e:
        raise Failure(f"cannot reach the identity provider at {url}: {e}") from e
    if resp.status_code != 200:
        raise Failure(f"{url} answered {resp.status_code}")
    try:
        return resp.json()
    except ValueError as e:
        raise Failure(f"{url} did not answer JSON") from e


def form_action(page, url):
    """Where the interaction page's form posts to (its own URL when unsaid)."""
    m = re.search(r'<form[^>]*action="([^"]*)"', page)
    return urljoin(url, html.unescape(m.group(1))) if m else url


def claims_of(id_token):
    try:
        payload = id_token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as e:
        raise Failure("the identity provider's id_token is not a JWT") from e


def login(args):
    idp = args.idp.rstrip("/")
    password = read_secret(args.password_file, "password") if args.password_file else TEST_PASSWORD
    client_secret = (read_secret(args.client_secret_file, "client secret")
                     if args.client_secret_file else f"{args.client}-secret")
    http = requests.Session()
    meta = get_json(http, idp + "/.well-known/openid-configuration")
    if meta.get("issuer") != idp:
        raise Failure(f"the provider names the issuer {meta.get('issuer')!r}, not {idp!r}")
    for name in ("authorization_endpoint", "token_endpoint"):
        if not meta.get(name):
            raise Failure(f"the provider's metadata has no {name}")

    verifier = b64url(secrets.token_bytes(32))
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "client_id": args.client,
        "response_type": "code",
        "scope": args.scope,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
        "state": state,
        "nonce": nonce,
    }
    req = http.prepare_request(requests.Request("GET", meta["authorization_endpoint"], params=params))
    url, code = req.url, None
    try:
        resp = http.send(req, allow_redirects=False, timeout=TIMEOUT_SECS)
        for _ in range(MAX_STEPS):
            if resp.status_code == 200 and "/interaction/" in url:
                page = resp.text
                if 'name="prompt" value="login"' in page:
                    form = {"prompt": "login", "login": args.person, "password": password}
                elif 'name="prompt" value="consent"' in page:
                    form = {"prompt": "consent"}
                else:
                    raise Failure(f"{url}: neither a login nor a consent form")
                resp = http.post(form_action(page, url), data=form, allow_redirects=False,
                                 timeout=TIMEOUT_SECS)
                continue
            if not resp.is_redirect:
                raise Failure(f"{url} answered {resp.status_code} (an unknown person or client?)")
            url = urljoin(url, resp.headers["Location"])
            if url.startswith(REDIRECT_URI):
                query = parse_qs(urlsplit(url).query)
                if query.get("state") != [state]:
                    raise Failure("the redirect carries another state")
                if "error" in query:
                    raise Failure(f"the login failed: {query['error'][0]}")
                code = query.get("code", [None])[0]
                break
            resp = http.get(url, allow_redirects=False, timeout=TIMEOUT_SECS)
        if not code:
            raise Failure("the login did not end with a code")
        resp = http.post(meta["token_endpoint"], timeout=TIMEOUT_SECS, data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": args.client,
            "client_secret": client_secret,
            "code_verifier": verifier,
        })
    except requests.RequestException as e:
        raise Failure(f"the identity provider stopped answering: {e}") from e
    try:
        body = resp.json()
    except ValueError as e:
        raise Failure(f"the token endpoint answered {resp.status_code}, not JSON") from e
    if resp.status_code != 200:
        raise Failure(f"the token endpoint refused the code: {body.get('error')}: "
                      f"{body.get('error_description', '')}")
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise Failure("the token endpoint sent no id_token")
    claims = claims_of(id_token)
    if claims.get("nonce") != nonce:
        raise Failure("the id_token carries another nonce")
    return id_token, claims


def write_private(path, text):
    """Writes `text` to `path`, readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)
    except OSError as e:
        raise Failure(f"cannot write {path}: {e.strerror}") from e


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idp", required=True, help="the provider's issuer URL")
    p.add_argument("--person", required=True, help="who logs in (alice or bob)")
    p.add_argument("--out", required=True, help="the file the ID token is written to (mode 0600)")
    p.add_argument("--client", default="tessera-eddsa",
                   help="the provider's client the token is for: its aud (default tessera-eddsa)")
    p.add_argument("--scope", default="openid groups may_act",
                   help="scopes asked (default: openid groups may_act)")
    p.add_argument("--password-file", help="a file holding the person's password")
    p.add_argument("--client-secret-file", help="a file holding the client's secret")
    args = p.parse_args(argv)
    try:
        id_token, claims = login(args)
        write_private(args.out, id_token)
    except Failure as e:
        print(f"idp-login: {e}", file=sys.stderr)
        return 1
    print(f"{claims.get('sub')} logged in at {claims.get('iss')}; ID token for "
          f"{claims.get('aud')} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
