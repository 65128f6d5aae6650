// Tessera's test identity provider: a real OpenID provider (oidc-provider)
// with two test people, a `groups` claim and one client per signing
// algorithm. Started by the Rust tests (tests/it/people/idp.rs):
//
//   node tests/idp/provider.mjs <port>
//
// Issuer: http://127.0.0.1:<port>. Prints one line `ready <issuer>` on
// stdout once it listens. Signing keys are generated at start, so every run
// has its own keys, published at the provider's JWKS endpoint.
//
// Logins go through oidc-provider's development interactions: a plain HTML
// form (`prompt=login`, `login=<account>`, any password) and a consent form
// (`prompt=consent`), both posted to /interaction/<uid>.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: node provider.mjs <port>\n');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

// The test people. `may_act` (RFC 8693 §4.4) names the agent alice lets act
// for her; it is released with the `may_act` scope.
const people = {
  alice: { groups: ['finance', 'staff'], may_act: { sub: 'agent://acme/planner' } },
  bob: { groups: ['staff'] },
};

function privateJwk(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

const jwks = {
  keys: [
    privateJwk('ed25519', {}, 'EdDSA', 'ed-1'),
    privateJwk('ec', { namedCurve: 'P-256' }, 'ES256', 'es-1'),
    privateJwk('rsa', { modulusLength: 2048 }, 'RS256', 'rs-1'),
  ],
};

// One confidential client per ID token signing algorithm, and one whose
// ID tokens carry another audience. All redirect to a loopback URI that
// nothing listens on: the tests read the code from the Location header.
const REDIRECT_URI = 'http://127.0.0.1/callback';
const client = (clientId, alg) => ({
  client_id: clientId,
  client_secret: `${clientId}-secret`,
  redirect_uris: [REDIRECT_URI],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_post',
  id_token_signed_response_alg: alg,
});

const configuration = {
  clients: [
    client('tessera-eddsa', 'EdDSA'),
    client('tessera-es256', 'ES256'),
    client('tessera-rs256', 'RS256'),
    client('other-app', 'EdDSA'),
  ],
  jwks,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    groups: ['groups'],
    may_act: ['may_act'],
  },
  // Scope claims go into the ID token of the code flow too, so the tests
  // need no userinfo call.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Interaction: 300, Session: 600, Grant: 600 },
  async findAccount(ctx, id) {
    const person = people[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, groups: person.groups, ...(person.may_act ? { may_act: person.may_act } : {}) };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
server.on('error', (error) => {
  process.stderr.write(`cannot listen: ${error.message}\n`);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
