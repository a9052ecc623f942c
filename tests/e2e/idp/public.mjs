// Test-only OpenID provider for PUBLIC clients (issue 11): a single-page app and
// device-flow clients. Same package as server.mjs (npm oidc-provider), its own
// process and host name (op.test), so the confidential-client scenarios of
// server.mjs keep their exact provider.
//
// Environment:
//   IDP_PORT        port to listen on (127.0.0.1); issuer is https://op.test:IDP_PORT
//   SPA_REDIRECT    the SPA's redirect URI (e.g. https://spa.test:PORT/callback); its
//                   origin is allowed for CORS (oidc-provider's default for public clients)
//   TLS_KEY, TLS_CERT, SIGNING_KEY   as for server.mjs
//   DEVICE_CODE_TTL_SHORT  lifetime in seconds of device codes of client "device-short"
//                   (default 3): the expiry scenario; "device-cli" codes live 10 minutes
//
// Clients (all public: token_endpoint_auth_method "none", PKCE required):
//   spa           authorization_code + refresh_token, redirect SPA_REDIRECT; refresh tokens
//                 only with offline_access and prompt=consent, rotated on every use
//   device-cli    urn:ietf:params:oauth:grant-type:device_code
//   device-short  the same with short-lived device codes
//
// Prints "IDP READY <issuer>" on stdout once listening.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';

import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT);
const spaRedirect = process.env.SPA_REDIRECT;
if (!port || !spaRedirect || !process.env.TLS_KEY || !process.env.TLS_CERT) {
  console.error('usage: IDP_PORT, SPA_REDIRECT, TLS_KEY and TLS_CERT must be set');
  process.exit(2);
}
const issuer = `https://op.test:${port}`;
const shortTTL = Number(process.env.DEVICE_CODE_TTL_SHORT || 3);
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const signingKey = (process.env.SIGNING_KEY
  ? createPrivateKey(readFileSync(process.env.SIGNING_KEY))
  : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
).export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'spa',
      client_name: 'authtrace e2e SPA',
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      redirect_uris: [spaRedirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'openid profile email offline_access',
    },
    ...['device-cli', 'device-short'].map((clientId) => ({
      client_id: clientId,
      client_name: `authtrace e2e ${clientId}`,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: [],
      grant_types: [DEVICE_GRANT],
      response_types: [],
      scope: 'openid profile email',
    })),
  ],
  jwks: { keys: [{ ...signingKey, kid: 'e2e-public-rs256', alg: 'RS256', use: 'sig' }] },
  cookies: { keys: ['authtrace-e2e-public-cookie-key'] },
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
  ttl: {
    DeviceCode: (_ctx, _token, client) => (client.clientId === 'device-short' ? shortTTL : 600),
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  // The default already rotates a public client's refresh token on every use; said here
  // because the refresh-reuse scenario depends on it.
  rotateRefreshToken: () => true,
});

for (const event of ['grant.error', 'server_error', 'authorization.error', 'userinfo.error', 'revocation.error']) {
  provider.on(event, (_ctx, err) => {
    console.error(`IDP ${event}: ${err.name} ${err.message} ${err.error_description || ''} ${err.error_detail || ''}`.trim());
  });
}
provider.on('grant.success', (ctx) => console.log(`IDP grant.success ${ctx.oidc.params.grant_type}`));

const server = https.createServer(
  { key: readFileSync(process.env.TLS_KEY), cert: readFileSync(process.env.TLS_CERT) },
  provider.callback(),
);
server.listen(port, '127.0.0.1', () => {
  console.log(`IDP READY ${issuer}; SPA redirect ${spaRedirect}`);
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
