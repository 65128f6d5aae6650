#!/usr/bin/env python3
"""An agent that asks a person first: pay through MCP, with the person's approval.

The agent (authenticated with `private_key_jwt` exactly as authlib_client.py
does) gets its own token for the payment, and calls the MCP example's `pay`
tool with the official MCP Python SDK (mcp_client.py). The tool refuses: the
token carries no person's approval. Its error carries a hint (one JSON text
block: `bc_authorize`, `action`, `resource`, `audience`, `amount`), and the
agent asks the person with exactly that at `POST /oauth/bc-authorize`
(OpenID CIBA, `authorization_details` per RFC 9396) in ping mode: it serves
`POST /ciba-ping` on the loopback port `--notify-port` (the endpoint an
operator registered for the agent, `notification_endpoint`), with a random
`client_notification_token`. Once the person approves, Tessera pings it;
the agent collects the approved token at the token endpoint (grant
`urn:openid:params:grant-type:ciba`) and calls `pay` again, which now
names the approval. With `--over AMOUNT` it then tries a larger payment
with the same token, which the token's cap refuses.

Each step is one JSON line on standard output (`{"step": ...}`); no token
is ever printed. An error is one line on standard error, exit status 1.

    python pay_agent.py --issuer http://127.0.0.1:8080 \\
        --agent agent://acme/payer --key payer.key \\
        --mcp http://127.0.0.1:8090/mcp --notify-port 8095 \\
        --person 'https://login.acme.example|alice' \\
        --payee acme --amount 40.00EUR --message 'Pay acme 40 EUR'
"""

import argparse
import asyncio
import http.server
import json
import secrets
import sys
import threading
import time

import requests
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth

from authlib_client import EdDSAPrivateKeyJWT, Failure, load_key
from mcp_client import call as mcp_call

CIBA = "urn:openid:params:grant-type:ciba"
TIMEOUT_SECS = 30


def say(step, **fields):
    """One JSON line on standard output."""
    sys.stdout.write(json.dumps({"step": step, **fields}) + "\n")
    sys.stdout.flush()


class Issuer:
    """The issuer's endpoints, and the agent's client authentication."""

    def __init__(self, issuer, agent, key):
        self.issuer = issuer.rstrip("/")
        self.auth = OAuth2ClientAuth(agent, key, EdDSAPrivateKeyJWT())
        meta = self.get_json(self.issuer + "/.well-known/oauth-authorization-server")
        if meta.get("issuer") != self.issuer:
            raise Failure(f"metadata names the issuer {meta.get('issuer')!r}, not {self.issuer!r}")
        if "ping" not in meta.get("backchannel_token_delivery_modes_supported", []):
            raise Failure("the issuer does not offer CIBA ping mode")
        self.token_endpoint = meta["token_endpoint"]
        self.bc_authorize = meta["backchannel_authentication_endpoint"]

    @staticmethod
    def get_json(url):
        try:
            resp = requests.get(url, timeout=TIMEOUT_SECS)
        except requests.RequestException as e:
            raise Failure(f"cannot reach {url}: {e}") from e
        if resp.status_code != 200:
            raise Failure(f"{url} answered {resp.status_code}")
        return resp.json()

    def post(self, url, form):
        """POSTs `form` with a fresh client assertion; the JSON answer, or a Failure naming the OAuth error."""
        try:
            resp = requests.post(url, data=form, auth=self.auth, timeout=TIMEOUT_SECS)
        except requests.RequestException as e:
            raise Failure(f"cannot reach {url}: {e}") from e
        try:
            body = resp.json()
        except ValueError as e:
            raise Failure(f"{url} answered {resp.status_code} without JSON") from e
        if resp.status_code != 200:
            raise Failure(f"{url}: {body.get('error')}: {body.get('error_description', '')}")
        return body


class PingReceiver:
    """`POST /ciba-ping` on a loopback port: waits for Tessera's ping for one request."""

    def __init__(self, port):
        self.token = secrets.token_urlsafe(24)
        self.pinged = {}
        self.arrived = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server name
                length = min(int(self.headers.get("Content-Length") or 0), 4096)
                body = self.rfile.read(length)
                if self.path != "/ciba-ping":
                    self.send_response(404)
                elif self.headers.get("Authorization") != f"Bearer {receiver.token}":
                    self.send_response(401)
                else:
                    try:
                        receiver.pinged = json.loads(body)
                    except ValueError:
                        receiver.pinged = {}
                    receiver.arrived.set()
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, seconds):
        if not self.arrived.wait(seconds):
            raise Failure(f"no ping within {seconds} s")
        return self.pinged

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def pay(mcp, token, payee, amount):
    return asyncio.run(mcp_call(mcp, token, "pay", {"payee": payee, "amount": amount}))


def hint_of(outcome):
    """The remediation hint in a refused call's content, if any."""
    for text in outcome.get("content", []):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and value.get("remediation") == "person_approval":
            return value
    return None


def run(args):
    issuer = Issuer(args.issuer, args.agent, load_key(args.key))
    resource = f"payees/{args.payee}"
    # The agent's own token: it may pay, but no person approved anything.
    own = issuer.post(issuer.token_endpoint, {
        "grant_type": "client_credentials", "scope": "payments:create",
        "identifier": resource, "resource": args.mcp,
    })
    first = pay(args.mcp, own["access_token"], args.payee, args.amount)
    hint = hint_of(first)
    say("first_call", ok=first["ok"], content=first["content"], hint=hint)
    if first["ok"] or hint is None:
        raise Failure("the first call was not refused with a hint")
    if hint["bc_authorize"] != issuer.bc_authorize:
        raise Failure(f"the hint names {hint['bc_authorize']}, not this issuer's endpoint")

    receiver = PingReceiver(args.notify_port)
    try:
        details = [{
            "type": "tessera", "actions": [hint["action"]], "identifier": hint["resource"],
            "locations": [hint["audience"]], "amount": hint["amount"],
        }]
        asked = issuer.post(issuer.bc_authorize, {
            "login_hint": args.person, "binding_message": args.message,
            "authorization_details": json.dumps(details),
            "client_notification_token": receiver.token,
        })
        auth_req_id = asked["auth_req_id"]
        say("asked", auth_req_id=auth_req_id, expires_in=asked.get("expires_in"))
        started = time.monotonic()
        pinged = receiver.wait(args.wait)
        say("pinged", auth_req_id=pinged.get("auth_req_id"),
            after_ms=round((time.monotonic() - started) * 1000))
        if pinged.get("auth_req_id") != auth_req_id:
            raise Failure("the ping names another request")
    finally:
        receiver.close()

    approved = issuer.post(issuer.token_endpoint, {"grant_type": CIBA, "auth_req_id": auth_req_id})
    say("token", token_type=approved.get("token_type"), expires_in=approved.get("expires_in"))
    second = pay(args.mcp, approved["access_token"], args.payee, args.amount)
    say("second_call", ok=second["ok"], content=second["content"])
    if args.over:
        over = pay(args.mcp, approved["access_token"], args.payee, args.over)
        say("over_call", ok=over["ok"], content=over["content"], hint=hint_of(over))
    return 0 if second["ok"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", required=True, help="the Tessera issuer's URL")
    parser.add_argument("--agent", required=True, help="the agent's URI (its client id)")
    parser.add_argument("--key", required=True, help="the agent's Ed25519 private key (PEM)")
    parser.add_argument("--mcp", required=True, help="the MCP endpoint, e.g. http://127.0.0.1:8090/mcp")
    parser.add_argument("--notify-port", type=int, required=True,
                        help="the loopback port of the agent's notification_endpoint http://127.0.0.1:PORT/ciba-ping")
    parser.add_argument("--person", required=True, help="login_hint: '<IdP issuer>|<subject>'")
    parser.add_argument("--payee", required=True)
    parser.add_argument("--amount", required=True, help="as in 40.00EUR")
    parser.add_argument("--message", default="Approve a payment", help="binding_message shown to the person")
    parser.add_argument("--over", help="then try this larger amount with the approved token")
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for the person")
    args = parser.parse_args()
    try:
        return run(args)
    except (Failure, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
