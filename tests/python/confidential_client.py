#!/usr/bin/env python3
"""A confidential Client ID Metadata Document client built on Authlib, for
the tests: it authenticates at Tessera's token endpoint with
`private_key_jwt` signed by a key its metadata document publishes.

    confidential_client.py keygen ES256|RS256 KID
        prints {"private": <JWK>, "public": <JWK>} of a new key

    confidential_client.py redeem TOKEN_ENDPOINT CLIENT_ID PRIVATE_JWK_FILE \\
        CODE REDIRECT_URI CODE_VERIFIER
        redeems the code (grant authorization_code, PKCE), then refreshes
        once, and prints {"access_token": ..., "refreshed": ..., "scope": ...}

Errors are one line on standard error and a non-zero exit status.
"""

import json
import sys
import time

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, RSAKey

# Tessera refuses client assertions that live longer than 5 minutes.
ASSERTION_SECS = 60
TIMEOUT_SECS = 30


class ShortPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's `private_key_jwt` with a short-lived assertion (its default
    `exp` is an hour ahead) and the key's `kid` in the header."""

    def __init__(self, token_endpoint, alg, kid):
        super().__init__(token_endpoint, alg=alg, headers={"kid": kid})

    def sign(self, auth, token_endpoint):
        now = int(time.time())
        self.claims = {"iat": now, "exp": now + ASSERTION_SECS}
        return super().sign(auth, token_endpoint)


def keygen(alg, kid):
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, parameters=params)
    else:
        raise SystemExit(f"confidential_client: unknown algorithm {alg}")
    print(json.dumps({"private": key.as_dict(private=True), "public": key.as_dict(private=False)}))


def redeem(token_endpoint, client_id, key_file, code, redirect_uri, verifier):
    with open(key_file, encoding="utf-8") as f:
        jwk = json.load(f)
    key = ECKey.import_key(jwk) if jwk["kty"] == "EC" else RSAKey.import_key(jwk)
    session = OAuth2Session(
        client_id=client_id,
        client_secret=key,
        token_endpoint_auth_method=ShortPrivateKeyJWT(token_endpoint, jwk["alg"], jwk["kid"]),
        redirect_uri=redirect_uri,
    )
    token = session.fetch_token(
        token_endpoint,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        timeout=TIMEOUT_SECS,
    )
    refreshed = session.refresh_token(
        token_endpoint, refresh_token=token["refresh_token"], timeout=TIMEOUT_SECS
    )
    print(json.dumps({
        "access_token": token["access_token"],
        "refreshed": refreshed["access_token"],
        "scope": token.get("scope"),
    }))


def main(argv):
    try:
        if argv[:1] == ["keygen"] and len(argv) == 3:
            keygen(argv[1], argv[2])
        elif argv[:1] == ["redeem"] and len(argv) == 7:
            redeem(*argv[1:])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:  # Authlib's OAuthError, requests' errors: one line
        print(f"confidential_client: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
