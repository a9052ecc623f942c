// Test-only OpenID provider for the authtrace end-to-end rig.
//
// Environment (argv[2] may give the port instead of IDP_PORT):
//   IDP_PORT        port to listen on (127.0.0.1); issuer is https://idp.test:IDP_PORT
//   APP_PORT        port of the relying party (redirect URI https://app.test:APP_PORT/callback)
//   TLS_KEY         PEM private key for the HTTPS listener
//   TLS_CERT        PEM certificate (SAN idp.test) for the HTTPS listener
//   CLIENT_ID       default authtrace-rp
//   CLIENT_SECRET   default authtrace-rp-secret
//
// Prints "IDP READY <issuer>" on stdout once listening.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.argv[2] || process.env.IDP_PORT);
const appPort = Number(process.env.APP_PORT);
if (!port || !appPort || !process.env.TLS_KEY || !process.env.TLS_CERT) {
  console.error('usage: IDP_PORT APP_PORT TLS_KEY TLS_CERT must be set');
  process.exit(2);
}
const issuer = `https://idp.test:${port}`;

// Resource servers the client may ask for (RFC 8707). Access tokens for them
// are RFC 9068 JWTs whose "aud" is the resource indicator.
const RESOURCE_SERVERS = {
  'https://api.test': { scope: 'api:read', audience: 'https://api.test', accessTokenFormat: 'jwt', accessTokenTTL: 600 },
  'https://other.test': { scope: 'api:read', audience: 'https://other.test', accessTokenFormat: 'jwt', accessTokenTTL: 600 },
};

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID || 'authtrace-rp',
    client_secret: process.env.CLIENT_SECRET || 'authtrace-rp-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [`https://app.test:${appPort}/callback`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    scope: 'openid profile email api:read',
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
  console.log(`IDP READY ${issuer}`);
});

// Keep-alive connections from the proxy would keep server.close() waiting.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
