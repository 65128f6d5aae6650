"""A receiver of Tessera's person webhook, with the standard library only.

    python webhook_receiver.py --secret-file webhook.secret --port 8099 [--tolerance 300]

Listens on 127.0.0.1:<port>. For each POST it checks the header
`Tessera-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
(docs/approval.md, "Checking the signature"): the MAC over the exact body,
compared in constant time, and `t` within the tolerance of this clock. An
authentic notice is printed as one JSON line on stdout (a real receiver
would message the person the `approval_url`) and answered 204; the same
notice again (a retry or a replay within the tolerance) is answered 204
and not printed twice; anything else is answered 401 with the reason.
"""

import argparse
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class SignatureError(Exception):
    """Why a notice is refused (one line)."""


def verify(secret: bytes, header: str, body: bytes, now: int, tolerance: int) -> None:
    """Raises SignatureError unless `header` signs `body` under `secret` near `now`."""
    t, given = None, []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed Tessera-Signature header: expected key=value pairs")
        if key == "t":
            if t is not None or not value.isdigit() or len(value) > 12:
                raise SignatureError("malformed Tessera-Signature header: t must be unix seconds")
            t = int(value)
        elif key == "v1":
            given.append(value)
    if t is None or not given:
        raise SignatureError("malformed Tessera-Signature header: t and v1 are required")
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, g.lower()) for g in given):
        raise SignatureError("bad signature: not made with this secret over this body")
    if now - t > tolerance:
        raise SignatureError(f"timestamp too old: signed {now - t} s ago (a replay?)")
    if t - now > tolerance:
        raise SignatureError(f"timestamp {t - now} s in the future")


def handler(secret: bytes, tolerance: int):
    seen = {}  # (t, body digest) -> when seen: drops duplicates within the tolerance

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the standard library's name)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.answer(413, "body too large")
            body = self.rfile.read(length)
            header = self.headers.get("Tessera-Signature", "")
            now = int(time.time())
            try:
                verify(secret, header, body, now, tolerance)
            except SignatureError as e:
                return self.answer(401, str(e))
            for key, at in list(seen.items()):
                if now - at > 2 * tolerance:
                    del seen[key]
            key = (header.split(",")[0], hashlib.sha256(body).hexdigest())
            if key not in seen:
                seen[key] = now
                notice = json.loads(body)
                print(json.dumps({"ok": True, "notice": notice}), flush=True)
            self.answer(204, "")

        def answer(self, status, reason):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            if reason:
                self.wfile.write(reason.encode() + b"\n")

        def log_message(self, *args):
            pass

    return Receiver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tolerance", type=int, default=300)
    args = parser.parse_args()
    with open(args.secret_file, "rb") as f:
        secret = f.read().strip()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(secret, args.tolerance))
    print(json.dumps({"listening": args.port}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
