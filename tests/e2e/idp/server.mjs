// Test-only OpenID provider for the authtrace end-to-end rig.
//
// Environment (argv[2] may give the port instead of IDP_PORT):
//   IDP_PORT        port to listen on (127.0.0.1); issuer is https://idp.test:IDP_PORT
//   REDIRECT_URIS   the client's redirect URIs, separated by spaces or commas
//                   (e.g. one per relying-party process of the rig)
//   APP_PORT        shorthand for REDIRECT_URIS=https://app.test:APP_PORT/callback
//                   (both may be given; the lists are joined)
//   TLS_KEY         PEM private key for the HTTPS listener
//   TLS_CERT        PEM certificate (SAN idp.test) for the HTTPS listener
//   SIGNING_KEY     PEM RSA private key for signing (ID tokens, JWT access tokens);
//                   generated at start when unset (slow under CPU contention)
//   CLIENT_ID       default authtrace-rp
//   CLIENT_SECRET   default authtrace-rp-secret
//
// Prints "IDP READY <issuer>" on stdout once listening.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.argv[2] || process.env.IDP_PORT);
const redirectUris = [
  ...(process.env.APP_PORT ? [`https://app.test:${Number(process.env.APP_PORT)}/callback`] : []),
  ...(process.env.REDIRECT_URIS || '').split(/[\s,]+/).filter(Boolean),
];
if (!port || !redirectUris.length || !process.env.TLS_KEY || !process.env.TLS_CERT) {
  console.error('usage: IDP_PORT, REDIRECT_URIS (or APP_PORT), TLS_KEY and TLS_CERT must be set');
  process.exit(2);
}
const issuer = `https://idp.test:${port}`;

// Resource servers the client may ask for (RFC 8707). Access tokens for them
// are RFC 9068 JWTs whose "aud" is the resource indicator.
const RESOURCE_SERVERS = {
  'https://api.test': { scope: 'api:read', audience: 'https://api.test', accessTokenFormat: 'jwt', accessTokenTTL: 600 },
  'https://other.test': { scope: 'api:read', audience: 'https://other.test', accessTokenFormat: 'jwt', accessTokenTTL: 600 },
};

const started = Date.now();
const signingKey = (process.env.SIGNING_KEY
  ? createPrivateKey(readFileSync(process.env.SIGNING_KEY))
  : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
).export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID || 'authtrace-rp',
    client_secret: process.env.CLIENT_SECRET || 'authtrace-rp-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [...new Set(redirectUris)],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    scope: 'openid profile email', // OIDC scopes; api:read belongs to the resource servers below
  }],
  jwks: { keys: [{ ...signingKey, kid: 'e2e-rs256', alg: 'RS256', use: 'sig' }] },
  cookies: { keys: ['authtrace-e2e-cookie-key'] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({
      sub, name: `User ${sub}`, preferred_username: sub, email: `${sub}@example.test`, email_verified: true,
    }),
  }),
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No resource parameter at /authorize -> the grant covers https://api.test.
      defaultResource: async (_ctx, _client, oneOf) => oneOf || 'https://api.test',
      getResourceServerInfo: async (_ctx, resource) => {
        const info = RESOURCE_SERVERS[resource];
        if (!info) throw new errors.InvalidTarget();
        return info;
      },
    },
  },
  // The code redemption (no resource parameter) yields an opaque token for the
  // userinfo endpoint; the RP then uses the refresh token with
  // resource=https://api.test to get the API's JWT access token.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
});

for (const event of ['grant.error', 'server_error', 'authorization.error', 'userinfo.error', 'revocation.error']) {
  provider.on(event, (_ctx, err) => {
    console.error(`IDP ${event}: ${err.name} ${err.message} ${err.error_description || ''} ${err.error_detail || ''}`.trim());
  });
}
provider.on('grant.success', () => console.log('IDP grant.success'));

const server = https.createServer(
  { key: readFileSync(process.env.TLS_KEY), cert: readFileSync(process.env.TLS_CERT) },
  provider.callback(),
);
server.listen(port, '127.0.0.1', () => {
  console.log(`IDP READY ${issuer} (${Date.now() - started} ms after modules loaded); redirect URIs ${[...new Set(redirectUris)].join(' ')}`);
});

// Keep-alive connections from the proxy would keep server.close() waiting.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
