"""Calls one tool of an MCP server over streamable HTTP with a Tessera token,
using the official MCP Python SDK, and prints the outcome as JSON.

    python mcp_client.py URL TOKEN TOOL [ARGUMENTS_JSON]

    python mcp_client.py http://127.0.0.1:8090/mcp "$TOKEN" get_order '{"id": 1}'

TOKEN is sent as `Authorization: Bearer TOKEN` on every HTTP request; give
an empty string to send none. The JSON printed on standard output:

    {"ok": true|false,            # the call ran and the tool did not fail
     "is_error": true|false|null, # the tool's isError (null: no tool result)
     "content": ["..."],          # the text blocks of the tool result
     "error": "..." | null,       # why there is no tool result
     "http_refusals": [{"status": 401, "www_authenticate": "...", "body": "..."}]}

A tool server that refuses the token itself answers the HTTP request with
401/403/503 and a `WWW-Authenticate` challenge (RFC 6750, RFC 9728): those
answers are collected in `http_refusals`, since the MCP client only reports
"Server returned an error response". Exit status 0 when `ok`, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def _errors(exc: BaseException) -> list[str]:
    """The messages of an exception, flattening exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [m for e in exc.exceptions for m in _errors(e)]
    return [f"{type(exc).__name__}: {exc}"]


async def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    refusals: list[dict[str, Any]] = []

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

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out: dict[str, Any] = {"ok": False, "is_error": None, "content": [], "error": None}
    try:
        async with httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"response": [remember_refusal]},
        ) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    result = await session.call_tool(tool, arguments)
        out["is_error"] = bool(result.is_error)
        out["content"] = [block.text for block in result.content if getattr(block, "type", None) == "text"]
        if result.structured_content is not None:
            out["structured"] = result.structured_content
        out["ok"] = not result.is_error
    except Exception as exc:  # noqa: BLE001 - report any failure as JSON
        out["error"] = "; ".join(_errors(exc))
    out["http_refusals"] = refusals
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the MCP endpoint, e.g. http://127.0.0.1:8090/mcp")
    parser.add_argument("token", help="the Tessera token ('' for none)")
    parser.add_argument("tool", help="the tool to call")
    parser.add_argument("arguments", nargs="?", default="{}", help="the tool's arguments as a JSON object")
    args = parser.parse_args()
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        parser.error(f"arguments are not JSON: {exc}")
    if not isinstance(arguments, dict):
        parser.error("arguments must be a JSON object")
    out = asyncio.run(call(args.url, args.token, args.tool, arguments))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
