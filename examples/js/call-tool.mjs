#!/usr/bin/env node
// Calls one tool of an MCP server over streamable HTTP with a Tessera token,
// using the official MCP TypeScript SDK (@modelcontextprotocol/sdk), and
// prints the outcome as JSON.
//
//   node examples/js/call-tool.mjs URL TOKEN TOOL [ARGUMENTS_JSON]
//
//   node examples/js/call-tool.mjs http://127.0.0.1:8090/mcp "$TOKEN" get_order '{"id": 1}'
//
// TOKEN is sent as `Authorization: Bearer TOKEN` on every HTTP request; `@FILE`
// reads it from a file (`@-`: standard input), and an empty string sends
// none. The JSON line printed on standard output, the same as
// examples/python/mcp_client.py prints:
//
//   {"ok": true|false,             the call ran and the tool did not fail
//    "is_error": true|false|null,  the tool's isError (null: no tool result)
//    "content": ["..."],           the text blocks of the tool result
//    "error": "..." | null,        why there is no tool result
//    "http_refusals": [{"status": 401, "www_authenticate": "...", "body": "..."}]}
//
// A tool server that refuses the token itself answers the HTTP request with
// 401/403/503 and a `WWW-Authenticate` challenge (RFC 6750, RFC 9728): those
// answers are collected in `http_refusals`, since the MCP client only
// reports the status. Exit status 0 when `ok`, 1 otherwise, 2 for bad usage.

import { readFileSync } from "node:fs";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const PROG = "call-tool.mjs";

function usage(message) {
  process.stderr.write(`${PROG}: usage error: ${message} (usage: node examples/js/${PROG} URL TOKEN TOOL [ARGUMENTS_JSON])\n`);
  process.exit(2);
}

function parseArgs(argv) {
  if (argv.length < 3 || argv.length > 4) usage(`expected 3 or 4 arguments, got ${argv.length}`);
  const [rawUrl, rawToken, tool, rawArguments = "{}"] = argv;
  let url;
  try {
    url = new URL(rawUrl);
  } catch {
    usage(`not a URL: ${JSON.stringify(rawUrl)}`);
  }
  let token = rawToken;
  if (rawToken.startsWith("@")) {
    const path = rawToken.slice(1);
    try {
      token = readFileSync(path === "-" ? 0 : path, "utf8").trim();
    } catch (e) {
      usage(`cannot read the token from ${path}: ${e.code ?? e.message}`);
    }
  }
  let args;
  try {
    args = JSON.parse(rawArguments);
  } catch (e) {
    usage(`arguments are not JSON: ${e.message}`);
  }
  if (args === null || typeof args !== "object" || Array.isArray(args)) usage("arguments must be a JSON object");
  return { url, token, tool, args };
}

/** The messages of an error and its causes, on one line. */
function messages(e) {
  const out = [];
  for (let c = e; c !== undefined && c !== null && out.length < 4; c = c.cause) {
    out.push(`${c.name ?? "Error"}: ${c.message ?? String(c)}`);
  }
  return out.join("; ").split(/\s+/).join(" ");
}

async function call({ url, token, tool, args }) {
  const refusals = [];
  // Every HTTP request of the transport goes through here, so that refusals
  // are recorded with their challenge before the SDK turns them into errors.
  const recordingFetch = async (input, init) => {
    const response = await fetch(input, init);
    if ([401, 403, 503].includes(response.status)) {
      refusals.push({
        status: response.status,
        www_authenticate: response.headers.get("www-authenticate"),
        body: await response.clone().text(),
      });
    }
    return response;
  };
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const out = { ok: false, is_error: null, content: [], error: null };
  const client = new Client({ name: "tessera-js-example", version: "1.0.0" });
  try {
    const transport = new StreamableHTTPClientTransport(url, {
      requestInit: { headers },
      fetch: recordingFetch,
    });
    await client.connect(transport);
    const result = await client.callTool({ name: tool, arguments: args });
    out.is_error = Boolean(result.isError);
    out.content = (result.content ?? []).filter((b) => b.type === "text").map((b) => b.text);
    if (result.structuredContent !== undefined) out.structured = result.structuredContent;
    out.ok = !result.isError;
  } catch (e) {
    out.error = messages(e);
  } finally {
    await client.close().catch(() => {});
  }
  out.http_refusals = refusals;
  return out;
}

const out = await call(parseArgs(process.argv.slice(2)));
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exitCode = out.ok ? 0 : 1;
