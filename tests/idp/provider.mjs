// Tessera's test identity provider: a real OpenID provider (oidc-provider)
// with two test people, a `groups` claim and one client per signing
// algorithm. Started by the Rust tests (tests/it/people/idp.rs):
//
//   node tests/idp/provider.mjs <port> [<ID token lifetime, seconds; 300>]
//
// Issuer: http://127.0.0.1:<port>. Prints one line `ready <issuer>` on
// stdout once it listens. Signing keys are generated at start, so every run
// has its own keys, published at the provider's JWKS endpoint.
//
// Logins go through oidc-provider's development interactions: a plain HTML
// form (`prompt=login`, `login=<account>`, any password) and a consent form
// (`prompt=consent`), both posted to /interaction/<uid>. A browser can fill
// them too (tests/browser/lib.mjs). Client `tessera-web` (secret
// `tessera-web-secret`, client_secret_post) and `tessera-web-basic`
// (client_secret_basic) are Tessera's login, redirecting to
// http://127.0.0.1:<any port>/login/callback.
//
// Identity assertions (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant):
// a client posts the person's ID token to /token with the token-exchange
// grant (`requested_token_type=urn:ietf:params:oauth:token-type:id-jag`,
// `audience` = the resource authorization server, i.e. Tessera's issuer URL,
// `client_id_at_audience` = the agent's id there, optional `scope`,
// `resource`, `cnf_jkt`) and gets a JAG signed with this provider's own
// EdDSA key. `jag_typ` overrides the `typ` header, for tests of a wrong one.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import { createLocalJWKSet, importJWK, jwtVerify, SignJWT } from 'jose';

const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: node provider.mjs <port>\n');
  process.exit(2);
}
const idTokenTtl = Number.parseInt(process.argv[3] ?? '300', 10);
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
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const client = (clientId, alg) => ({
  client_id: clientId,
  client_secret: `${clientId}-secret`,
  redirect_uris: [REDIRECT_URI],
  grant_types: ['authorization_code', TOKEN_EXCHANGE],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_post',
  id_token_signed_response_alg: alg,
});

// Tessera's own login (src/web/login.rs): a native client, so that its
// loopback redirect URI matches any port (RFC 8252 §7.3) and each test's
// issuer can use it. The secret is known to the tests.
const webClient = {
  client_id: 'tessera-web',
  client_secret: 'tessera-web-secret',
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/login/callback'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_post',
  id_token_signed_response_alg: 'EdDSA',
};
const webClientBasic = {
  ...webClient,
  client_id: 'tessera-web-basic',
  client_secret: 'tessera-web-basic-secret',
  token_endpoint_auth_method: 'client_secret_basic',
};

const configuration = {
  clients: [
    client('tessera-eddsa', 'EdDSA'),
    client('tessera-es256', 'ES256'),
    client('tessera-rs256', 'RS256'),
    client('other-app', 'EdDSA'),
    webClient,
    webClientBasic,
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
  ttl: { IdToken: idTokenTtl, AccessToken: 300, AuthorizationCode: 60, Interaction: 300, Session: 600, Grant: 600 },
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

// The public half of the signing keys, to check the ID tokens sent back.
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];
const publicKeys = createLocalJWKSet({
  keys: jwks.keys.map((k) => Object.fromEntries(Object.entries(k).filter(([m]) => !PRIVATE_MEMBERS.includes(m)))),
});
const jagKey = await importJWK(jwks.keys[0], 'EdDSA');

async function issueJag(ctx) {
  const { params, client: caller } = ctx.oidc;
  if (params.requested_token_type !== ID_JAG) {
    throw new errors.InvalidRequest('requested_token_type must be id-jag');
  }
  if (params.subject_token_type !== ID_TOKEN || !params.subject_token) {
    throw new errors.InvalidRequest('subject_token must be an ID token');
  }
  if (!params.audience || !params.client_id_at_audience) {
    throw new errors.InvalidRequest('audience and client_id_at_audience are required');
  }
  let idToken;
  try {
    ({ payload: idToken } = await jwtVerify(params.subject_token, publicKeys, {
      issuer,
      audience: caller.clientId,
    }));
  } catch (error) {
    throw new errors.InvalidGrant(`subject_token: ${error.message}`);
  }
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    sub: idToken.sub,
    client_id: params.client_id_at_audience,
    jti: randomBytes(16).toString('hex'),
    ...(idToken.groups ? { groups: idToken.groups } : {}),
    ...(params.scope ? { scope: params.scope } : {}),
    ...(params.resource ? { resource: params.resource } : {}),
    ...(params.cnf_jkt ? { cnf: { jkt: params.cnf_jkt } } : {}),
  };
  const jag = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid: jwks.keys[0].kid, typ: params.jag_typ || 'oauth-id-jag+jwt' })
    .setIssuer(issuer)
    .setAudience(params.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(jagKey);
  ctx.body = { access_token: jag, issued_token_type: ID_JAG, token_type: 'N_A', expires_in: 300 };
}

provider.registerGrantType(TOKEN_EXCHANGE, issueJag, [
  'subject_token', 'subject_token_type', 'requested_token_type', 'audience',
  'client_id_at_audience', 'scope', 'resource', 'cnf_jkt', 'jag_typ',
]);
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
