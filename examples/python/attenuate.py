#!/usr/bin/env python3
"""Attenuate or verify a Tessera token with biscuit-python, and no Tessera code.

A Tessera token is a Biscuit v3 token (docs/token-schema.md), so any Biscuit
library can read it, narrow it and check it. This script does that with
biscuit-python (`import biscuit_auth`):

  narrow   appends a first-party block of checks (the attenuation block of
           the token schema) and prints the new token;
  widen    appends a first-party block of facts and a rule that try to grant
           more, and prints the new token. Tessera must ignore such a block:
           facts of an appended block are not trusted by the authority
           block's checks nor by the verifier's policies. This exists for the
           interoperability test (tests/it/interop_biscuit_python.rs);
  verify   checks the token's signatures against the root key and runs its
           checks with the request's facts and `allow if true`, printing one
           JSON line.

Every value goes into Datalog as a parameter, never as source text. The token
is read from a file (`-` for standard input) and parsed with the root public
key (`ed25519/<hex>`), which verifies every signature first; `--root-key-id`
also requires the token's (unsigned) root key id to be that number.

Output: the token (narrow, widen) or the JSON line (verify) on standard
output, and nothing else. An error is one line on standard error, and the
exit status is 1 (2 for bad usage).

    .venv/bin/python examples/python/attenuate.py narrow \
        --token planner.tok --root-key-file root.pub --root-key-id 0 \
        --resource-prefix docs/team-a/reports/ --expires-at 2026-11-23T00:05:00Z
"""

import argparse
import datetime
import json
import sys

import biscuit_auth
from biscuit_auth import AuthorizerBuilder, Biscuit, BlockBuilder, PublicKey, UnverifiedBiscuit

PROG = "attenuate.py"
# Datalog run limits for `verify`: biscuit's default 1 ms time limit refuses
# valid tokens when a busy machine deschedules the evaluating thread.
MAX_TIME = datetime.timedelta(milliseconds=100)


class Failure(Exception):
    """An error to report on one line, with exit status 1."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message):
        fail(f"usage error: {message} (see --help)", status=2)


def fail(message, status=1):
    line = " ".join(str(message).split())
    print(f"{PROG}: {line}", file=sys.stderr)
    sys.exit(status)


def timestamp(text):
    """An RFC 3339 time with a zone (`2026-11-23T00:05:00Z`)."""
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"time without a zone: {text!r} (add Z or +00:00)")
    return t.astimezone(datetime.timezone.utc)


def read_text(path):
    try:
        if path == "-":
            return sys.stdin.read().strip()
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as e:
        raise Failure(f"cannot read {path}: {e.strerror}") from None


def root_key(args):
    text = args.root_key if args.root_key is not None else read_text(args.root_key_file)
    if not text.startswith("ed25519/"):
        raise Failure("the root key must be written ed25519/<64 hex digits>")
    try:
        return PublicKey(text)
    except Exception as e:  # biscuit_auth raises its own types, or ValueError
        raise Failure(f"invalid root key: {e}") from None


def load(args):
    """The token, parsed and verified with the root key."""
    token = read_text(args.token)
    if not token:
        raise Failure("empty token")
    key = root_key(args)
    try:
        named = UnverifiedBiscuit.from_base64(token).root_key_id()
    except Exception as e:
        raise Failure(f"malformed token: {e}") from None
    if args.root_key_id is not None and named != args.root_key_id:
        raise Failure(f"the token names root key id {named}, not {args.root_key_id}")
    try:
        # The key provider is called with the token's root key id (or None).
        return Biscuit.from_base64(token, lambda _id: key)
    except Exception as e:
        raise Failure(f"token rejected: {e}") from None


def append(token, block):
    try:
        print(token.append(block).to_base64())
    except Exception as e:
        raise Failure(f"cannot append the block: {e}") from None


def narrow(args):
    if args.resource is not None and args.resource_prefix is not None:
        raise Failure("give --resource or --resource-prefix, not both")
    block = BlockBuilder()
    if args.action is not None:
        block.add_code("check if operation($op), $op == {action};", {"action": args.action})
    if args.resource is not None:
        block.add_code("check if resource($r), $r == {resource};", {"resource": args.resource})
    if args.resource_prefix is not None:
        block.add_code(
            "check if resource($r), $r.starts_with({prefix});", {"prefix": args.resource_prefix}
        )
    if args.expires_at is not None:
        # Biscuit dates are whole seconds; dropping the fraction only narrows.
        block.add_code(
            "check if time($t), $t <= {expires_at};",
            {"expires_at": args.expires_at.replace(microsecond=0)},
        )
    if args.audience is not None:
        block.add_code("check if service($s), $s == {audience};", {"audience": args.audience})
    if not any(
        v is not None
        for v in (args.action, args.resource, args.resource_prefix, args.expires_at, args.audience)
    ):
        raise Failure("nothing to narrow: give at least one of --action, --resource, "
                      "--resource-prefix, --expires-at, --audience")
    append(load(args), block)


def widen(args):
    block = BlockBuilder()
    for action, resource in args.right:
        block.add_code("right({action}, {resource});", {"action": action, "resource": resource})
    for action, prefix in args.right_prefix:
        block.add_code(
            "right_prefix({action}, {prefix});", {"action": action, "prefix": prefix}
        )
    if args.holder_proven:
        block.add_code("holder_proven(true);")
    if args.grant_requested:
        block.add_code("right($op, $r) <- operation($op), resource($r);")
    if not (args.right or args.right_prefix or args.holder_proven or args.grant_requested):
        raise Failure("nothing to add: give --right, --right-prefix, --holder-proven "
                      "or --grant-requested")
    append(load(args), block)


def verify(args):
    token = load(args)
    now = args.time if args.time is not None else datetime.datetime.now(datetime.timezone.utc)
    # Tokens carry whole seconds: a fraction past the expiry is past it.
    if now.microsecond:
        now = now.replace(microsecond=0) + datetime.timedelta(seconds=1)
    builder = AuthorizerBuilder(
        "time({now}); operation({operation}); resource({resource});",
        {"now": now, "operation": args.operation, "resource": args.resource},
    )
    if args.service is not None:
        builder.add_code("service({service});", {"service": args.service})
    builder.add_code("allow if true;")
    limits = builder.limits()
    limits.max_time = MAX_TIME
    builder.set_limits(limits)
    try:
        policy = builder.build(token).authorize()
    except Exception as e:
        raise Failure(f"denied: {e}") from None
    print(
        json.dumps(
            {
                "allowed": True,
                "policy": policy,
                "blocks": token.block_count(),
                "revocation_ids": list(token.revocation_ids),
            }
        )
    )


def main(argv=None):
    parser = Parser(prog=PROG, description="Attenuate or verify a Tessera token with biscuit-python.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name, help_text, run):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(run=run)
        p.add_argument("--token", required=True, metavar="FILE", help="the token (base64url); - for stdin")
        key = p.add_mutually_exclusive_group(required=True)
        key.add_argument("--root-key", metavar="KEY", help="the root public key, ed25519/<hex>")
        key.add_argument("--root-key-file", metavar="FILE", help="a file holding the root public key")
        p.add_argument("--root-key-id", type=int, metavar="N", help="the root key id the token must name")
        return p

    p = command("narrow", "append a block of checks (attenuation) and print the new token", narrow)
    p.add_argument("--action", help="allow only this action")
    p.add_argument("--resource", help="allow only this exact resource")
    p.add_argument("--resource-prefix", metavar="PREFIX", help="allow only resources starting with PREFIX")
    p.add_argument("--expires-at", type=timestamp, metavar="TIME", help="expire at TIME (RFC 3339) or earlier")
    p.add_argument("--audience", metavar="URI", help="allow only at this tool server")

    p = command("widen", "append a block that tries to grant more (Tessera must ignore it)", widen)
    p.add_argument("--right", nargs=2, action="append", default=[], metavar=("ACTION", "RESOURCE"),
                   help="add the fact right(ACTION, RESOURCE)")
    p.add_argument("--right-prefix", nargs=2, action="append", default=[], metavar=("ACTION", "PREFIX"),
                   help="add the fact right_prefix(ACTION, PREFIX)")
    p.add_argument("--holder-proven", action="store_true", help="add the fact holder_proven(true)")
    p.add_argument("--grant-requested", action="store_true",
                   help="add the rule right($op, $r) <- operation($op), resource($r)")

    p = command("verify", "check the token against a request; print one JSON line", verify)
    p.add_argument("--operation", required=True, help="the action requested")
    p.add_argument("--resource", required=True, help="the resource requested")
    p.add_argument("--service", metavar="URI", help="this tool server's canonical URI (its audience)")
    p.add_argument("--time", type=timestamp, metavar="TIME", help="the request time (default: now)")

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except Failure as e:
        fail(e)
    except biscuit_auth.DataLogError as e:
        fail(f"datalog error: {e}")


if __name__ == "__main__":
    main()
