#!/usr/bin/env python3
"""Exchange a person's ID token for a Tessera token that acts for them (RFC 8693).

The agent authenticates with `private_key_jwt` exactly as authlib_client.py
does (an EdDSA client assertion signed with its key from `tessera keygen`),
and asks Authlib's `fetch_token` for the token-exchange grant with the
person's ID token as `subject_token`, for one action (`scope`) on one
resource or prefix (`identifier`) at one tool server (`resource`). Tessera
grants it only within both the person's roles and the agent's ceiling, and
only if the person approved this agent (`may_act` in the ID token, or a
standing consent). With `--dpop` the token is bound to the agent's key.

The person's token is read from a file and the new token is written to a
file (mode 0600); neither is printed. Standard output gets one JSON line with
the response's other fields (token_type, issued_token_type, expires_in,
scope). An error is one line on standard error and the exit status is 1.

    python exchange.py --issuer http://127.0.0.1:8093 \\
        --agent agent://acme/planner --key planner.key \\
        --id-token alice.idtoken --action docs:read --resource docs/team-a/q3 \\
        --audience https://docs.acme.example --out alice.tok
"""

import argparse
import json
import os
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session

from authlib_client import EdDSAPrivateKeyJWT, Failure, discover, dpop_proof, load_key

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TYPES = {"id_token": ID_TOKEN, "access_token": ACCESS_TOKEN,
                 "jwt": "urn:ietf:params:oauth:token-type:jwt"}
# Tessera refuses larger subject tokens; do not send more.
MAX_SUBJECT_BYTES = 16 * 1024
TIMEOUT_SECS = 30
# The response's fields that are not secret.
SHOWN = ("token_type", "issued_token_type", "expires_in", "scope")


def read_subject(path):
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SUBJECT_BYTES + 2)
    except OSError as e:
        raise Failure(f"cannot read the subject token file {path}: {e.strerror}") from e
    text = raw.decode("ascii", errors="replace").strip()
    if len(raw) > MAX_SUBJECT_BYTES + 1 or not text or any(c.isspace() for c in text):
        raise Failure(f"{path} does not hold one token (at most 16 KiB)")
    return text


def write_private(path, text):
    """Writes `text` to `path`, readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)
    except OSError as e:
        raise Failure(f"cannot write {path}: {e.strerror}") from e


def exchange(args):
    issuer = args.issuer.rstrip("/")
    key = load_key(args.key)
    subject = read_subject(args.id_token)
    session = OAuth2Session(
        client_id=args.agent,
        client_secret=key,
        token_endpoint_auth_method=EdDSAPrivateKeyJWT(),
    )
    meta = discover(session, issuer)
    if TOKEN_EXCHANGE not in meta.get("grant_types_supported", []):
        raise Failure("the issuer does not offer token exchange")
    token_endpoint = meta["token_endpoint"]

    headers = {"Accept": "application/json"}
    if args.dpop:
        if "EdDSA" not in meta.get("dpop_signing_alg_values_supported", []):
            raise Failure("the issuer does not accept EdDSA DPoP proofs")
        headers["DPoP"] = dpop_proof(key, "POST", token_endpoint)

    params = {
        "subject_token": subject,
        "subject_token_type": SUBJECT_TYPES[args.subject_token_type],
        "scope": args.action,
        "identifier": args.resource,
    }
    if args.audience:
        params["resource"] = args.audience
    if args.ttl:
        params["lifetime"] = args.ttl
    try:
        token = session.fetch_token(token_endpoint, grant_type=TOKEN_EXCHANGE, headers=headers,
                                    timeout=TIMEOUT_SECS, **params)
    except requests.RequestException as e:
        raise Failure(f"token exchange failed: {e}") from e
    # Authlib raises OAuthError (error, description) for an RFC 6749 §5.2 answer.
    expected = "DPoP" if args.dpop else "Bearer"
    if token.get("token_type") != expected:
        raise Failure(f"expected a {expected} token, got {token.get('token_type')!r}")
    if token.get("issued_token_type") != ACCESS_TOKEN:
        raise Failure(f"expected an access token, got {token.get('issued_token_type')!r}")
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise Failure("the response holds no access_token")
    return access, {k: token[k] for k in SHOWN if k in token}


def main(argv=None):
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", default=env("TESSERA_ISSUER"),
                   help="issuer URL (env TESSERA_ISSUER)")
    p.add_argument("--agent", default=env("TESSERA_AGENT"),
                   help="the agent URI, its client id (env TESSERA_AGENT)")
    p.add_argument("--key", default=env("TESSERA_AGENT_KEY"),
                   help="the agent's Ed25519 private key, PEM (env TESSERA_AGENT_KEY)")
    p.add_argument("--id-token", required=True, metavar="FILE",
                   help="file holding the person's ID token (the subject token)")
    p.add_argument("--subject-token-type", choices=sorted(SUBJECT_TYPES), default="id_token",
                   help="what the file holds: id_token (default), jwt, or access_token "
                        "(a Tessera token already acting for the person)")
    p.add_argument("--action", required=True, help="the one action (scope)")
    p.add_argument("--resource", required=True,
                   help="the resource, or a prefix with a trailing * (identifier)")
    p.add_argument("--audience", help="the tool server (RFC 8707 resource)")
    p.add_argument("--ttl", help="lifetime to ask for, e.g. 5m")
    p.add_argument("--dpop", action="store_true",
                   help="bind the token to the agent's key with a DPoP proof")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="file the token is written to (mode 0600)")
    args = p.parse_args(argv)
    for name in ("issuer", "agent", "key"):
        if not getattr(args, name):
            p.error(f"--{name} is required (or its environment variable)")
    try:
        access, shown = exchange(args)
        write_private(args.out, access)
    except Failure as e:
        print(f"exchange: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # Authlib's OAuthError and anything unforeseen
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"exchange: {message}", file=sys.stderr)
        return 1
    print(json.dumps(shown, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
