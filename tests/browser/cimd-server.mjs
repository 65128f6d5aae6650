// A static HTTPS server for Client ID Metadata Documents: the client's
// side of the MCP SDK tests (tests/it/mcp_oauth). The SDKs only accept an
// https client id, so the documents are served over TLS with a certificate
// the test makes (and tells Tessera to trust).
//
//   node cimd-server.mjs <cert.pem> <key.pem> <dir>
//
// Listens on 127.0.0.1 on a free port and prints `{"port": N}`; then
// `GET /<name>` answers the file <dir>/<name> as application/json (read at
// each request, so the test can write the documents once it knows the
// port), 404 otherwise. Each request is logged as one JSON line on
// standard error.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import path from 'node:path';

const [cert, key, dir] = process.argv.slice(2);
if (!cert || !key || !dir) {
  process.stderr.write('usage: node cimd-server.mjs <cert.pem> <key.pem> <dir>\n');
  process.exit(2);
}

const server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
  const name = decodeURIComponent(new URL(req.url, 'https://x').pathname.slice(1));
  process.stderr.write(`${JSON.stringify({ method: req.method, path: req.url })}\n`);
  if (req.method !== 'GET' || !/^[A-Za-z0-9._-]+$/.test(name)) {
    res.writeHead(404).end();
    return;
  }
  let body;
  try {
    body = readFileSync(path.join(dir, name));
  } catch {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
