#!/usr/bin/env node
// Connects to an MCP server from nothing but its URL with the official MCP
// TypeScript SDK's OAuth client (@modelcontextprotocol/sdk `auth()` and an
// `OAuthClientProvider`), identified by a Client ID Metadata Document URL,
// then calls one tool and prints the outcome as one JSON line.
//
//   node examples/js/oauth-connect.mjs --server URL --client-id URL \
//     --redirect-port PORT --store FILE --open COMMAND TOOL [ARGUMENTS_JSON]
//
//   node examples/js/oauth-connect.mjs --server http://127.0.0.1:8090/mcp \
//     --client-id https://client.example/mcp-client.json --redirect-port 8765 \
//     --store client-state.json --open xdg-open get_order '{"id": 1}'
//
// The flow is the SDK's: the server's 401 names its protected-resource
// metadata, which names the authorization server (Tessera); the SDK reads
// its metadata, sees `client_id_metadata_document_supported` and uses the
// --client-id URL as its client id (no registration), then asks this
// provider to send the person to the authorization URL: COMMAND is run with
// the URL as its last argument (a browser, or in the tests
// tests/browser/mcp-login.mjs, which logs in and consents in chromium).
// The authorization server redirects the browser to
// http://127.0.0.1:PORT/callback, where this script listens; it checks
// `state` and the RFC 9207 `iss`, hands the code to
// `transport.finishAuth(code)` (PKCE, `resource`), connects again and calls
// TOOL. A 403 `insufficient_scope` makes the SDK ask for the challenged
// scope (step-up): with --no-login (or when COMMAND fails) that second
// authorization is refused, and the outcome says so.
//
// --store FILE keeps the client's state between runs (the client id, the
// tokens, the PKCE verifier), mode 0600, as a desktop client keeps its
// credentials: a second run with the same FILE reuses the token. Nothing
// secret is printed. The JSON line on standard output:
//
//   {"ok": true|false,              the call ran and the tool did not fail
//    "is_error": true|false|null,   the tool's isError (null: no tool result)
//    "content": ["..."],            the text blocks of the tool result
//    "error": "..." | null,         why there is no tool result
//    "authorizations": [{"scope": "...", "resource": "...", "client_id": "..."}],
//    "http_refusals": [{"status": 403, "www_authenticate": "...", "body": "..."}]}
//
// Exit status 0 when `ok`, 1 otherwise, 2 for bad usage.

import { execFile } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const PROG = "oauth-connect.mjs";
const CALLBACK_PATH = "/callback";
// How long the person has to log in and consent.
const LOGIN_TIMEOUT_MS = 120_000;

function usage(message) {
  process.stderr.write(
    `${PROG}: usage error: ${message} (usage: node examples/js/${PROG} --server URL --client-id URL ` +
      `--redirect-port PORT --store FILE [--open COMMAND | --no-login] TOOL [ARGUMENTS_JSON])\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { open: null, noLogin: false };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--server") opts.server = value();
    else if (a === "--client-id") opts.clientId = value();
    else if (a === "--redirect-port") opts.port = Number(value());
    else if (a === "--store") opts.store = value();
    else if (a === "--open") opts.open = value();
    else if (a === "--no-login") opts.noLogin = true;
    else if (a.startsWith("--")) usage(`unknown option ${a}`);
    else rest.push(a);
  }
  for (const [k, flag] of [["server", "--server"], ["clientId", "--client-id"], ["store", "--store"]]) {
    if (!opts[k]) usage(`${flag} is required`);
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535) usage("--redirect-port must be a port number");
  if (!opts.open && !opts.noLogin) usage("give --open COMMAND (or --no-login)");
  if (rest.length < 1 || rest.length > 2) usage(`expected TOOL [ARGUMENTS_JSON], got ${rest.length} arguments`);
  try {
    opts.server = new URL(opts.server);
  } catch {
    usage(`not a URL: ${JSON.stringify(opts.server)}`);
  }
  opts.tool = rest[0];
  try {
    opts.args = JSON.parse(rest[1] ?? "{}");
  } catch (e) {
    usage(`arguments are not JSON: ${e.message}`);
  }
  if (opts.args === null || typeof opts.args !== "object" || Array.isArray(opts.args)) usage("arguments must be a JSON object");
  return opts;
}

/** The messages of an error and its causes, on one line. */
function messages(e) {
  const out = [];
  for (let c = e; c !== undefined && c !== null && out.length < 4; c = c.cause) {
    out.push(`${c.name ?? "Error"}: ${c.message ?? String(c)}`);
  }
  return out.join("; ").split(/\s+/).join(" ");
}

/** The client's state in a file only its owner can read. */
class Store {
  constructor(path) {
    this.path = path;
    this.data = existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : {};
  }
  get(key) {
    return this.data[key];
  }
  set(key, value) {
    if (value === undefined) delete this.data[key];
    else this.data[key] = value;
    writeFileSync(this.path, JSON.stringify(this.data), { mode: 0o600 });
    chmodSync(this.path, 0o600);
  }
}

/** Waits for the browser's redirect on the loopback port. */
class RedirectListener {
  constructor(port) {
    this.port = port;
    this.pending = null;
    this.server = createServer((req, res) => this.onRequest(req, res));
  }
  listen() {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, "127.0.0.1", resolve);
    });
  }
  close() {
    this.server.close();
  }
  /** A promise for the next redirect's query parameters. */
  next() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no redirect came back within the login timeout")), LOGIN_TIMEOUT_MS);
      this.pending = (params) => {
        clearTimeout(timer);
        resolve(params);
      };
    });
  }
  onRequest(req, res) {
    const url = new URL(req.url, `http://127.0.0.1:${this.port}`);
    if (url.pathname !== CALLBACK_PATH) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>Signed in</title><p>You can close this window.</p>");
    const pending = this.pending;
    this.pending = null;
    pending?.(url.searchParams);
  }
}

/** Runs COMMAND with the authorization URL as its last argument. */
function open(command, url) {
  const [file, ...args] = command.split(/\s+/).filter(Boolean);
  return new Promise((resolve, reject) => {
    execFile(file, [...args, url], { timeout: LOGIN_TIMEOUT_MS }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} failed: ${String(stderr).trim().split("\n").pop() || error.message}`));
      else resolve();
    });
  });
}

/**
 * The SDK's OAuthClientProvider: a public client (no secret) whose client
 * id is its metadata document's URL, with its state in the store.
 */
class Provider {
  constructor(opts, store, authorizations) {
    this.opts = opts;
    this.store = store;
    this.authorizations = authorizations;
    this.redirectUri = `http://127.0.0.1:${opts.port}${CALLBACK_PATH}`;
    this.clientMetadataUrl = opts.clientId;
    this.expectedState = null;
  }
  get redirectUrl() {
    return this.redirectUri;
  }
  get clientMetadata() {
    // What the metadata document at clientMetadataUrl says (the
    // authorization server reads it there, not from here).
    return {
      client_name: "Tessera example MCP client (TypeScript SDK)",
      redirect_uris: [this.redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    this.expectedState = crypto.randomUUID();
    return this.expectedState;
  }
  clientInformation() {
    return this.store.get("client");
  }
  saveClientInformation(info) {
    this.store.set("client", info);
  }
  tokens() {
    return this.store.get("tokens");
  }
  saveTokens(tokens) {
    this.store.set("tokens", tokens);
  }
  saveCodeVerifier(verifier) {
    this.store.set("code_verifier", verifier);
  }
  codeVerifier() {
    const v = this.store.get("code_verifier");
    if (!v) throw new Error("no PKCE code verifier saved");
    return v;
  }
  discoveryState() {
    return this.store.get("discovery");
  }
  saveDiscoveryState(state) {
    this.store.set("discovery", state);
  }
  invalidateCredentials(scope) {
    if (scope === "all" || scope === "tokens") this.store.set("tokens", undefined);
    if (scope === "all" || scope === "client") this.store.set("client", undefined);
    if (scope === "all" || scope === "verifier") this.store.set("code_verifier", undefined);
    if (scope === "all" || scope === "discovery") this.store.set("discovery", undefined);
  }
  async redirectToAuthorization(url) {
    this.authorizations.push({
      scope: url.searchParams.get("scope"),
      resource: url.searchParams.get("resource"),
      client_id: url.searchParams.get("client_id"),
    });
    if (this.opts.noLogin) throw new Error(`authorization needed (scope "${url.searchParams.get("scope")}"), and --no-login was given`);
    this.redirected = { url, done: this.listener.next() };
    // The browser runs while the listener waits; its failure ends the wait.
    await Promise.race([open(this.opts.open, url.href), this.redirected.done]);
  }
  /** The code from the redirect, after checking state and iss. */
  async code() {
    const params = await this.redirected.done;
    this.redirected = null;
    if (params.get("error")) {
      throw new Error(`the authorization server answered ${params.get("error")}: ${params.get("error_description") ?? ""}`);
    }
    if (!this.expectedState || params.get("state") !== this.expectedState) throw new Error("the redirect's state is not ours");
    const issuer = this.store.get("discovery")?.authorizationServerMetadata?.issuer;
    if (issuer && params.get("iss") !== issuer) throw new Error(`the redirect's iss (RFC 9207) is ${params.get("iss")}, not ${issuer}`);
    const code = params.get("code");
    if (!code) throw new Error("the redirect carries no code");
    return code;
  }
}

async function connect(opts, provider, refusals) {
  // Every HTTP request of the transport and the SDK's auth goes through
  // here, so that refusals are recorded with their challenge.
  const recordingFetch = async (input, init) => {
    const response = await fetch(input, init);
    if ([401, 403, 503].includes(response.status)) {
      const body = await response.clone().text().catch(() => "");
      refusals.push({ status: response.status, www_authenticate: response.headers.get("www-authenticate"), body });
    }
    return response;
  };
  const transport = new StreamableHTTPClientTransport(opts.server, { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: "tessera-oauth-connect", version: "0" });
  return { client, transport };
}

async function run(opts) {
  const store = new Store(opts.store);
  const authorizations = [];
  const refusals = [];
  const out = { ok: false, is_error: null, content: [], error: null };
  const listener = new RedirectListener(opts.port);
  if (!opts.noLogin) await listener.listen();
  const provider = new Provider(opts, store, authorizations);
  provider.listener = listener;
  try {
    let { client, transport } = await connect(opts, provider, refusals);
    try {
      await client.connect(transport);
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || !provider.redirected) throw e;
      // The person logged in and consented: exchange the code, connect again.
      await transport.finishAuth(await provider.code());
      ({ client, transport } = await connect(opts, provider, refusals));
      await client.connect(transport);
    }
    let result;
    try {
      result = await client.callTool({ name: opts.tool, arguments: opts.args });
    } catch (e) {
      // A step-up the person went through: the SDK asked for the new
      // scope; exchange the code and call again on a new connection.
      if (!(e instanceof UnauthorizedError) || !provider.redirected) throw e;
      await transport.finishAuth(await provider.code());
      ({ client, transport } = await connect(opts, provider, refusals));
      await client.connect(transport);
      result = await client.callTool({ name: opts.tool, arguments: opts.args });
    }
    out.is_error = Boolean(result.isError);
    out.content = (result.content ?? []).filter((b) => b.type === "text").map((b) => b.text);
    out.ok = !result.isError;
    await client.close();
  } catch (e) {
    out.error = messages(e);
  } finally {
    listener.close();
  }
  out.authorizations = authorizations;
  out.http_refusals = refusals;
  return out;
}

const out = await run(parseArgs(process.argv.slice(2)));
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.ok ? 0 : 1);
