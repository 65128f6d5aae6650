#!/usr/bin/env node
// Attenuate or verify a Tessera token with biscuit-wasm, and no Tessera code.
//
// A Tessera token is a Biscuit v3 token (docs/token-schema.md), so any Biscuit
// library can read it, narrow it and check it. This script does that with
// @biscuit-auth/biscuit-wasm (pinned in package.json):
//
//   narrow   appends a first-party block of checks (the attenuation block of
//            the token schema) and prints the new token;
//   widen    appends a first-party block of facts and a rule that try to grant
//            more, and prints the new token. Tessera refuses such a token: a
//            first-party block may hold checks only. This exists for the
//            interoperability test (tests/it/interop_js.rs);
//   verify   checks the token's signatures against the root key and runs its
//            checks with the request's facts and `allow if true`, printing one
//            JSON line.
//
// Every value goes into Datalog as a parameter, never as source text. The
// token is read from a file (`-` for standard input) and parsed with the root
// public key (`ed25519/<hex>`), which verifies every signature first;
// `--root-key-id` also requires the token's (unsigned) root key id to be that
// number.
//
// Output: the token (narrow, widen) or the JSON line (verify) on standard
// output, and nothing else. An error is one line on standard error, and the
// exit status is 1 (2 for bad usage).
//
//   node examples/js/attenuate.mjs narrow --token planner.tok \
//     --root-key-file root.pub --root-key-id 0 \
//     --resource-prefix docs/team-a/reports/ --expires-at 2026-11-23T00:05:00Z

import { readFileSync } from "node:fs";

import { biscuit } from "./biscuit.mjs";

const PROG = "attenuate.mjs";
// Datalog run limits for `verify` (all three fields are needed). The time
// limit is one second, not biscuit's default 1 ms: the first evaluation in a
// process also pays for compiling the WebAssembly code it runs (tens of
// milliseconds, more on a busy machine), and would be refused as a timeout.
const LIMITS = { max_facts: 1000, max_iterations: 100, max_time_micro: 1_000_000 };

class Failure extends Error {}
class Usage extends Error {}

function fail(message, status) {
  const line = String(message).split(/\s+/).filter(Boolean).join(" ");
  process.stderr.write(`${PROG}: ${line}\n`);
  process.exit(status);
}

/** A biscuit-wasm error (a plain object, or an Error) as text. */
function describe(e) {
  if (e instanceof Error) return e.message;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

// Options: name -> [number of values, repeatable, value names, help].
const COMMON = {
  "--token": [1, false, "FILE", "the token (base64url); - for standard input"],
  "--root-key": [1, false, "KEY", "the root public key, ed25519/<hex>"],
  "--root-key-file": [1, false, "FILE", "a file holding the root public key"],
  "--root-key-id": [1, false, "N", "the root key id the token must name"],
};
const COMMANDS = {
  narrow: {
    help: "append a block of checks (attenuation) and print the new token",
    run: narrow,
    options: {
      "--action": [1, false, "ACTION", "allow only this action"],
      "--resource": [1, false, "RESOURCE", "allow only this exact resource"],
      "--resource-prefix": [1, false, "PREFIX", "allow only resources starting with PREFIX"],
      "--expires-at": [1, false, "TIME", "expire at TIME (RFC 3339, with a zone) or earlier"],
      "--audience": [1, false, "URI", "allow only at this tool server"],
    },
  },
  widen: {
    help: "append a block that tries to grant more (Tessera must refuse it)",
    run: widen,
    options: {
      "--right": [2, true, "ACTION RESOURCE", "add the fact right(ACTION, RESOURCE)"],
      "--right-prefix": [2, true, "ACTION PREFIX", "add the fact right_prefix(ACTION, PREFIX)"],
      "--holder-proven": [0, false, "", "add the fact holder_proven(true)"],
      "--grant-requested": [0, false, "", "add the rule right($op, $r) <- operation($op), resource($r)"],
    },
  },
  verify: {
    help: "check the token against a request; print one JSON line",
    run: verify,
    options: {
      "--operation": [1, false, "ACTION", "the action requested (required)"],
      "--resource": [1, false, "RESOURCE", "the resource requested (required)"],
      "--service": [1, false, "URI", "this tool server's canonical URI (its audience)"],
      "--time": [1, false, "TIME", "the request time, RFC 3339 (default: now)"],
    },
  },
};

function usage() {
  const lines = [`usage: node examples/js/${PROG} COMMAND [OPTIONS]`, ""];
  for (const [name, c] of Object.entries(COMMANDS)) {
    lines.push(`${name}: ${c.help}`);
    for (const [opt, [, , meta, help]] of Object.entries({ ...COMMON, ...c.options })) {
      lines.push(`  ${`${opt} ${meta}`.padEnd(34)} ${help}`);
    }
    lines.push("");
  }
  lines.push("--token and one of --root-key, --root-key-file are required.");
  return lines.join("\n");
}

/** The command and its options: `{ "--right": [["a", "r"], ...], "--token": ["f"], ... }`. */
function parse(argv) {
  const [name, ...rest] = argv;
  if (name === "--help" || name === "-h") {
    process.stdout.write(`${usage()}\n`);
    process.exit(0);
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    throw new Usage(name === undefined ? "no command (narrow, widen or verify)" : `unknown command ${name}`);
  }
  const spec = { ...COMMON, ...command.options };
  const opts = {};
  for (let i = 0; i < rest.length; ) {
    const flag = rest[i];
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(`${usage()}\n`);
      process.exit(0);
    }
    const known = spec[flag];
    if (known === undefined) throw new Usage(`unknown option ${flag} for ${name}`);
    const [arity, repeatable] = known;
    const values = rest.slice(i + 1, i + 1 + arity);
    if (values.length < arity) throw new Usage(`${flag} needs ${arity} value(s)`);
    if (opts[flag] !== undefined && !repeatable) throw new Usage(`${flag} given twice`);
    opts[flag] = repeatable ? [...(opts[flag] ?? []), values] : arity === 0 ? true : values[0];
    i += 1 + arity;
  }
  if (opts["--token"] === undefined) throw new Usage("--token is required");
  if ((opts["--root-key"] === undefined) === (opts["--root-key-file"] === undefined)) {
    throw new Usage("give one of --root-key, --root-key-file");
  }
  if (opts["--root-key-id"] !== undefined && !/^\d{1,10}$/.test(opts["--root-key-id"])) {
    throw new Usage(`--root-key-id: not a number: ${opts["--root-key-id"]}`);
  }
  return { command, opts };
}

/** An RFC 3339 time with a zone (`2026-11-23T00:05:00Z`), as a Date. */
function timestamp(flag, text) {
  const t = new Date(text);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i.test(text) || Number.isNaN(t.getTime())) {
    throw new Usage(`${flag}: not an RFC 3339 time with a zone: ${JSON.stringify(text)} (e.g. 2026-11-23T00:05:00Z)`);
  }
  return t;
}

function readText(path) {
  try {
    return readFileSync(path === "-" ? 0 : path, "utf8").trim();
  } catch (e) {
    throw new Failure(`cannot read ${path}: ${e.code ?? e.message}`);
  }
}

/** The root public key text, checked. */
function rootKey(opts) {
  const text = opts["--root-key"] ?? readText(opts["--root-key-file"]);
  const m = /^ed25519\/([0-9a-fA-F]{64})$/.exec(text);
  if (m === null) throw new Failure("the root key must be written ed25519/<64 hex digits>");
  return m[1];
}

/** The token, parsed and verified with the root key. */
function load(opts) {
  const token = readText(opts["--token"]);
  if (token === "") throw new Failure("empty token");
  const hex = rootKey(opts);
  // biscuit-wasm takes ownership of a key it is given: a new one per call.
  const key = () => biscuit.PublicKey.fromString(hex, biscuit.SignatureAlgorithm.Ed25519);
  // Checked here, since a key that fails inside the provider makes
  // biscuit-wasm panic (a trace on standard error) instead of failing.
  try {
    key().free();
  } catch (e) {
    throw new Failure(`invalid root key: ${describe(e)}`);
  }
  let named = null;
  let parsed;
  let error;
  try {
    parsed = biscuit.Biscuit.fromBase64WithProvider(token, (id) => {
      named = id ?? null;
      return key();
    });
  } catch (e) {
    error = e;
  }
  const wanted = opts["--root-key-id"];
  if (wanted !== undefined && named !== null && named !== Number(wanted)) {
    throw new Failure(`the token names root key id ${named}, not ${wanted}`);
  }
  if (error !== undefined) throw new Failure(`token rejected: ${describe(error)}`);
  if (wanted !== undefined && named === null) {
    throw new Failure(`the token names no root key id, not ${wanted}`);
  }
  return parsed;
}

function code(block, source, parameters = {}) {
  block.addCodeWithParameters(source, parameters, {});
}

function append(token, block) {
  let out;
  try {
    out = token.appendBlock(block).toBase64();
  } catch (e) {
    throw new Failure(`cannot append the block: ${describe(e)}`);
  }
  process.stdout.write(`${out}\n`);
}

function narrow(opts) {
  if (opts["--resource"] !== undefined && opts["--resource-prefix"] !== undefined) {
    throw new Failure("give --resource or --resource-prefix, not both");
  }
  const names = ["--action", "--resource", "--resource-prefix", "--expires-at", "--audience"];
  if (names.every((n) => opts[n] === undefined)) {
    throw new Failure(`nothing to narrow: give at least one of ${names.join(", ")}`);
  }
  // Checked before the token is read, so that bad usage is reported first.
  const expires = opts["--expires-at"] === undefined ? undefined : timestamp("--expires-at", opts["--expires-at"]);
  const token = load(opts);
  const block = new biscuit.BlockBuilder();
  if (opts["--action"] !== undefined) {
    code(block, "check if operation($op), $op == {action};", { action: opts["--action"] });
  }
  if (opts["--resource"] !== undefined) {
    code(block, "check if resource($r), $r == {resource};", { resource: opts["--resource"] });
  }
  if (opts["--resource-prefix"] !== undefined) {
    code(block, "check if resource($r), $r.starts_with({prefix});", { prefix: opts["--resource-prefix"] });
  }
  if (expires !== undefined) {
    // Biscuit dates are whole seconds; dropping the fraction only narrows.
    const seconds = new Date(Math.floor(expires.getTime() / 1000) * 1000);
    code(block, "check if time($t), $t <= {expires_at};", { expires_at: biscuit.prepareTerm(seconds) });
  }
  if (opts["--audience"] !== undefined) {
    code(block, "check if service($s), $s == {audience};", { audience: opts["--audience"] });
  }
  append(token, block);
}

function widen(opts) {
  const rights = opts["--right"] ?? [];
  const prefixes = opts["--right-prefix"] ?? [];
  if (!(rights.length || prefixes.length || opts["--holder-proven"] || opts["--grant-requested"])) {
    throw new Failure("nothing to add: give --right, --right-prefix, --holder-proven or --grant-requested");
  }
  const token = load(opts);
  const block = new biscuit.BlockBuilder();
  for (const [action, resource] of rights) {
    code(block, "right({action}, {resource});", { action, resource });
  }
  for (const [action, prefix] of prefixes) {
    code(block, "right_prefix({action}, {prefix});", { action, prefix });
  }
  if (opts["--holder-proven"]) code(block, "holder_proven(true);");
  if (opts["--grant-requested"]) code(block, "right($op, $r) <- operation($op), resource($r);");
  append(token, block);
}

function verify(opts) {
  if (opts["--operation"] === undefined || opts["--resource"] === undefined) {
    throw new Usage("verify needs --operation and --resource");
  }
  let now = opts["--time"] === undefined ? new Date() : timestamp("--time", opts["--time"]);
  // Tokens carry whole seconds: a fraction past the expiry is past it.
  now = new Date(Math.ceil(now.getTime() / 1000) * 1000);
  const token = load(opts);
  const builder = new biscuit.AuthorizerBuilder();
  code(builder, "time({now}); operation({operation}); resource({resource});", {
    now: biscuit.prepareTerm(now),
    operation: opts["--operation"],
    resource: opts["--resource"],
  });
  if (opts["--service"] !== undefined) code(builder, "service({service});", { service: opts["--service"] });
  code(builder, "allow if true;");
  let policy;
  try {
    policy = builder.buildAuthenticated(token).authorizeWithLimits(LIMITS);
  } catch (e) {
    throw new Failure(`denied: ${describe(e)}`);
  }
  const result = {
    allowed: true,
    policy,
    blocks: token.countBlocks(),
    revocation_ids: token.getRevocationIdentifiers(),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function main(argv) {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (e) {
    if (e instanceof Usage) fail(`usage error: ${e.message} (see --help)`, 2);
    throw e;
  }
  try {
    parsed.command.run(parsed.opts);
  } catch (e) {
    if (e instanceof Usage) fail(`usage error: ${e.message} (see --help)`, 2);
    if (e instanceof Failure) fail(e.message, 1);
    // biscuit-wasm throws plain objects: a Datalog or format error.
    fail(`error: ${describe(e)}`, 1);
  }
}

main(process.argv.slice(2));
