#!/usr/bin/env python3
"""Get a Tessera capability token with Authlib, a standard OAuth client.

The agent authenticates with `private_key_jwt` (RFC 7523): a client assertion
signed with its own Ed25519 key (EdDSA), the PEM file written by
`tessera keygen`. It asks with the `client_credentials` grant for one action
(`scope`) on one resource or prefix (`identifier`) at one tool server
(`resource`, RFC 8707). With `--dpop` the token is bound to the agent's key
by a DPoP proof (RFC 9449).

The token endpoint is discovered from the issuer's RFC 8414 metadata. The
access token, and nothing else, is printed on standard output; an error is
one line on standard error and the exit status is non-zero.

    python authlib_client.py --issuer http://127.0.0.1:8080 \\
        --agent agent://acme/planner --key planner.key \\
        --action docs:read --resource 'docs/team-a/*' \\
        --audience https://docs.acme.example
"""

import argparse
import os
import sys
import time
import uuid
import warnings

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

# joserfc warns that the name "EdDSA" is superseded by "Ed25519" (RFC 9864);
# Tessera accepts "EdDSA", so the warning would only clutter standard error.
warnings.filterwarnings("ignore", category=SecurityWarning, message=".*EdDSA.*")

# Tessera refuses client assertions that live longer than 5 minutes.
ASSERTION_SECS = 60
TIMEOUT_SECS = 30


class Failure(Exception):
    """An error reported as one line on standard error."""


class EdDSAPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's `private_key_jwt` with EdDSA and a short-lived assertion.

    Authlib's `PrivateKeyJWT` signs with RS256 unless told otherwise (so
    `alg="EdDSA"` is passed) and gives assertions `exp = iat + 3600`, which
    Tessera refuses. The claims are set afresh for every request, so each
    assertion also gets a fresh `jti` (Authlib adds one to the claims dict
    when it has none).
    """

    def __init__(self, token_endpoint=None):
        # Without a token_endpoint, `aud` is the URL the request is sent to.
        super().__init__(token_endpoint, alg="EdDSA")

    def sign(self, auth, token_endpoint):
        now = int(time.time())
        self.claims = {"iat": now, "exp": now + ASSERTION_SECS}
        return super().sign(auth, token_endpoint)


def dpop_proof(key, method, url):
    """A DPoP proof (RFC 9449) for one request, signed by `key`."""
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.as_dict(private=False)}
    claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
    return jwt.encode(header, claims, key, algorithms=["EdDSA"])


def load_key(path):
    """The agent's Ed25519 private key from a PEM file (PKCS#8, as `tessera keygen` writes it)."""
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise Failure(f"cannot read the key file {path}: {e.strerror}") from e
    try:
        key = OKPKey.import_key(pem)
    except Exception as e:  # joserfc raises several kinds for a bad key
        raise Failure(f"{path} is not an Ed25519 private key in PEM") from e
    if key.curve_name != "Ed25519" or not key.is_private:
        raise Failure(f"{path} is not an Ed25519 private key")
    return key


def discover(session, issuer):
    """The issuer's RFC 8414 metadata, checked for what this client needs."""
    url = issuer + "/.well-known/oauth-authorization-server"
    try:
        resp = session.get(url, timeout=TIMEOUT_SECS, withhold_token=True)
    except requests.RequestException as e:
        raise Failure(f"cannot reach the issuer at {issuer}: {e}") from e
    if resp.status_code != 200:
        raise Failure(f"{url} answered {resp.status_code}")
    try:
        meta = resp.json()
    except ValueError as e:
        raise Failure(f"{url} did not answer JSON") from e
    if meta.get("issuer") != issuer:
        raise Failure(f"metadata names the issuer {meta.get('issuer')!r}, not {issuer!r}")
    if "private_key_jwt" not in meta.get("token_endpoint_auth_methods_supported", []):
        raise Failure("the issuer does not accept private_key_jwt")
    if "EdDSA" not in meta.get("token_endpoint_auth_signing_alg_values_supported", []):
        raise Failure("the issuer does not accept EdDSA client assertions")
    if not meta.get("token_endpoint"):
        raise Failure("metadata has no token_endpoint")
    return meta


def request_token(args):
    issuer = args.issuer.rstrip("/")
    key = load_key(args.key)
    session = OAuth2Session(
        client_id=args.agent,
        client_secret=key,
        token_endpoint_auth_method=EdDSAPrivateKeyJWT(),
        scope=args.action,
    )
    meta = discover(session, issuer)
    token_endpoint = meta["token_endpoint"]

    headers = {"Accept": "application/json"}
    if args.dpop:
        if "EdDSA" not in meta.get("dpop_signing_alg_values_supported", []):
            raise Failure("the issuer does not accept EdDSA DPoP proofs")
        headers["DPoP"] = dpop_proof(key, "POST", token_endpoint)

    params = {"identifier": args.resource}
    if args.audience:
        params["resource"] = args.audience
    if args.ttl:
        params["lifetime"] = args.ttl
    try:
        token = session.fetch_token(
            token_endpoint,
            grant_type="client_credentials",
            headers=headers,
            timeout=TIMEOUT_SECS,
            **params,
        )
    except requests.RequestException as e:
        raise Failure(f"token request failed: {e}") from e
    # Authlib raises OAuthError (error, description) for an RFC 6749 §5.2 answer.
    expected = "DPoP" if args.dpop else "Bearer"
    if token.get("token_type") != expected:
        raise Failure(f"expected a {expected} token, got {token.get('token_type')!r}")
    return token["access_token"]


def main(argv=None):
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", default=env("TESSERA_ISSUER"),
                   help="issuer URL (env TESSERA_ISSUER)")
    p.add_argument("--agent", default=env("TESSERA_AGENT"),
                   help="the agent URI, its client id (env TESSERA_AGENT)")
    p.add_argument("--key", default=env("TESSERA_AGENT_KEY"),
                   help="the agent's Ed25519 private key, PEM (env TESSERA_AGENT_KEY)")
    p.add_argument("--action", required=True, help="the one action (scope)")
    p.add_argument("--resource", required=True,
                   help="the resource, or a prefix with a trailing * (identifier)")
    p.add_argument("--audience", help="the tool server (RFC 8707 resource)")
    p.add_argument("--ttl", help="lifetime to ask for, e.g. 5m")
    p.add_argument("--dpop", action="store_true",
                   help="bind the token to the agent's key with a DPoP proof")
    args = p.parse_args(argv)
    for name in ("issuer", "agent", "key"):
        if not getattr(args, name):
            p.error(f"--{name} is required (or its environment variable)")
    try:
        print(request_token(args))
    except Failure as e:
        print(f"authlib_client: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # Authlib's OAuthError and anything unforeseen
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"authlib_client: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
