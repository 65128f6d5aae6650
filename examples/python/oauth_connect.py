"""Connects to an MCP server from nothing but its URL with the official MCP
Python SDK's OAuth client (`mcp.client.auth.OAuthClientProvider`),
identified by a Client ID Metadata Document URL, calls one tool and prints
the outcome as one JSON line.

    python oauth_connect.py --server URL --client-id URL --redirect-port PORT \\
        --store FILE (--open COMMAND | --no-login) TOOL [ARGUMENTS_JSON]

    python examples/python/oauth_connect.py --server http://127.0.0.1:8090/mcp \\
        --client-id https://client.example/mcp-client.json --redirect-port 8766 \\
        --store client-state.json --open xdg-open get_order '{"id": 1}'

The SDK does the flow: the server's 401 names its protected-resource
metadata (RFC 9728), which names the authorization server (Tessera); the
SDK reads its metadata (RFC 8414), uses the --client-id URL as its client id
when the server says `client_id_metadata_document_supported`, and calls the
redirect handler with the authorization URL (PKCE S256, `state`,
`resource`). COMMAND is run with that URL as its last argument (a browser,
or in the tests `tests/browser/mcp-login.mjs`, which logs in at the identity
provider and consents in chromium). The callback handler waits for the
browser at http://127.0.0.1:PORT/callback and returns the code, `state` and
the RFC 9207 `iss`, which the SDK checks before it exchanges the code. A 403
`insufficient_scope` makes the SDK ask again for the challenged scope
(step-up); with --no-login any new authorization is refused.

--store FILE keeps the tokens and the client id between runs (mode 0600).
Nothing secret is printed. The JSON line on standard output:

    {"ok": true|false, "is_error": true|false|null, "content": ["..."],
     "error": "..." | null,
     "authorizations": [{"scope": "...", "resource": "...", "client_id": "..."}],
     "http_refusals": [{"status": 403, "www_authenticate": "...", "body": "..."}]}

Exit status 0 when `ok`, 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

CALLBACK_PATH = "/callback"
# How long the person has to log in and consent.
LOGIN_TIMEOUT_SECS = 120.0


def _errors(exc: BaseException) -> list[str]:
    """The messages of an exception, flattening exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [m for e in exc.exceptions for m in _errors(e)]
    return [f"{type(exc).__name__}: {exc}"]


class FileStorage:
    """The SDK's TokenStorage in a JSON file only its owner can read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def _save(self, key: str, value: Any) -> None:
        data = self._load()
        data[key] = value
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.chmod(self.path, 0o600)

    async def get_tokens(self) -> OAuthToken | None:
        raw = self._load().get("tokens")
        return OAuthToken.model_validate(raw) if raw else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._save("tokens", tokens.model_dump(mode="json", exclude_none=True))

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        raw = self._load().get("client")
        return OAuthClientInformationFull.model_validate(raw) if raw else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._save("client", client_info.model_dump(mode="json", exclude_none=True))


class Redirects:
    """The browser's side: run COMMAND with the URL, then wait for the
    redirect on the loopback port."""

    def __init__(self, port: int, command: str | None, authorizations: list[dict[str, Any]]) -> None:
        self.port = port
        self.command = command
        self.authorizations = authorizations
        self.result: asyncio.Future[AuthorizationCodeResult] | None = None
        self.server: asyncio.base_events.Server | None = None

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.split(" ")
            target = urlsplit(parts[1]) if len(parts) >= 2 else None
            if target is None or target.path != CALLBACK_PATH:
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                return
            body = b"<!doctype html><title>Signed in</title><p>You can close this window.</p>"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            query = {k: v[0] for k, v in parse_qs(target.query).items()}
            if self.result is not None and not self.result.done():
                if "error" in query:
                    self.result.set_exception(
                        RuntimeError(
                            f"the authorization server answered {query['error']}: {query.get('error_description', '')}"
                        )
                    )
                elif "code" not in query:
                    self.result.set_exception(RuntimeError("the redirect carries no code"))
                else:
                    self.result.set_result(
                        AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))
                    )
        finally:
            await writer.drain()
            writer.close()

    async def redirect(self, url: str) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        self.authorizations.append(
            {"scope": query.get("scope"), "resource": query.get("resource"), "client_id": query.get("client_id")}
        )
        if self.command is None:
            raise RuntimeError(f"authorization needed (scope {query.get('scope')!r}), and --no-login was given")
        self.result = asyncio.get_running_loop().create_future()
        argv = [*shlex.split(self.command), url]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(proc.communicate(), LOGIN_TIMEOUT_SECS)
        if proc.returncode != 0 and not self.result.done():
            last = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            self.result.set_exception(RuntimeError(f"{self.command} failed: {last[0]}"))

    async def callback(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization was started")
        return await asyncio.wait_for(self.result, LOGIN_TIMEOUT_SECS)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    authorizations: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []
    out: dict[str, Any] = {"ok": False, "is_error": None, "content": [], "error": None}
    redirect_uri = f"http://127.0.0.1:{args.redirect_port}{CALLBACK_PATH}"
    redirects = Redirects(args.redirect_port, None if args.no_login else args.open, authorizations)

    async def remember_refusal(response: httpx2.Response) -> None:
        if response.status_code in (401, 403, 503):
            await response.aread()
            refusals.append(
                {
                    "status": response.status_code,
                    "www_authenticate": response.headers.get("www-authenticate"),
                    "body": response.text,
                }
            )

    try:
        if not args.no_login:
            await redirects.listen()
        auth = OAuthClientProvider(
            server_url=args.server,
            client_metadata=OAuthClientMetadata(
                client_name="Tessera example MCP client (Python SDK)",
                redirect_uris=[redirect_uri],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=FileStorage(Path(args.store)),
            redirect_handler=redirects.redirect,
            callback_handler=redirects.callback,
            client_metadata_url=args.client_id,
        )
        async with httpx2.AsyncClient(
            auth=auth,
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"response": [remember_refusal]},
        ) as http:
            async with streamable_http_client(args.server, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    result = await session.call_tool(args.tool, args.arguments)
        out["is_error"] = bool(result.is_error)
        out["content"] = [block.text for block in result.content if getattr(block, "type", None) == "text"]
        out["ok"] = not result.is_error
    except Exception as exc:  # noqa: BLE001 - report any failure as JSON
        out["error"] = "; ".join(_errors(exc))
    finally:
        await redirects.close()
    out["authorizations"] = authorizations
    out["http_refusals"] = refusals
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="the MCP endpoint, e.g. http://127.0.0.1:8090/mcp")
    parser.add_argument("--client-id", required=True, help="the client's metadata document URL (https)")
    parser.add_argument("--redirect-port", required=True, type=int, help="the loopback port of the redirect URI")
    parser.add_argument("--store", required=True, help="the file keeping tokens between runs")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--open", help="the command that opens the authorization URL (its last argument)")
    group.add_argument("--no-login", action="store_true", help="refuse any new authorization")
    parser.add_argument("tool", help="the tool to call")
    parser.add_argument("arguments", nargs="?", default="{}", help="the tool's arguments as a JSON object")
    args = parser.parse_args()
    try:
        args.arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        parser.error(f"arguments are not JSON: {exc}")
    if not isinstance(args.arguments, dict):
        parser.error("arguments must be a JSON object")
    # The SDK logs a failed authorization with its traceback; the JSON line
    # already says why, in one line.
    logging.getLogger("mcp").addHandler(logging.NullHandler())
    out = asyncio.run(run(args))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
