// Test-only single-page app (issue 11): React 19 + oauth4webapi, code flow with PKCE,
// state and nonce, entirely in the browser (a public client: no secret).
//
// The page reads its settings from <script id="config" type="application/json">
// ({issuer, client_id, redirect_uri}) written by serve.py.
//
// Routes: /login?variant=V starts a sign-in; /callback redeems the code; / shows the state.
// Variants:
//   guarded     the login and redemption effects run once (a guard): the correct app
//   unguarded   no guard: React StrictMode (development build) mounts each page twice, so the
//               login effect navigates to /authorize twice (the browser aborts the first) and
//               each mount of the callback redeems the same code, as many real apps do by mistake
//   refresh     guarded, plus offline_access and prompt=consent: a rotating refresh token
// The outcome is JSON in <pre id="result" data-phase="...">; window.spa lets a test
// use the tokens (userinfo, refresh with the current or the previous refresh token)
// without ever reading them.
import * as oauth from 'oauth4webapi';
import { StrictMode, useEffect, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';

const config = JSON.parse(document.getElementById('config').textContent);
const issuer = new URL(config.issuer);
const client = { client_id: config.client_id };
const clientAuth = oauth.None();
const PENDING = 'authtrace-spa.pending';

let asPromise;
function authorizationServer() {
  asPromise ??= oauth.discoveryRequest(issuer).then((r) => oauth.processDiscoveryResponse(issuer, r));
  return asPromise;
}

function describe(err) {
  if (err instanceof oauth.ResponseBodyError) {
    return { ok: false, status: err.status, error: err.error, error_description: err.error_description };
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const c = err.cause?.[0]?.parameters || {};
    return { ok: false, status: err.response?.status, error: c.error, error_description: c.error_description };
  }
  return { ok: false, error: err?.name || 'Error', error_description: String(err?.message || err) };
}

// Tokens stay in this module; tests only see outcomes.
const tokens = { access: null, refresh: [], claims: null };

async function login(variant) {
  const as = await authorizationServer();
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce, variant }));
  const url = new URL(as.authorization_endpoint);
  const scope = variant === 'refresh' ? 'openid profile email offline_access' : 'openid profile email';
  url.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: config.redirect_uri,
    response_type: 'code',
    scope,
    state,
    nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...(variant === 'refresh' ? { prompt: 'consent' } : {}),
  });
  window.location.assign(url.href);
}

async function redeem(pending) {
  const as = await authorizationServer();
  const params = oauth.validateAuthResponse(as, client, new URL(window.location.href), pending.state);
  const response = await oauth.authorizationCodeGrantRequest(
    as, client, clientAuth, params, config.redirect_uri, pending.verifier,
  );
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce: pending.nonce, requireIdToken: true,
  });
  tokens.access = result.access_token;
  if (result.refresh_token) tokens.refresh.push(result.refresh_token);
  tokens.claims = oauth.getValidatedIdTokenClaims(result);
  return { ok: true, status: response.status, refresh_token: Boolean(result.refresh_token), scope: result.scope };
}

async function userinfo() {
  const as = await authorizationServer();
  try {
    const response = await oauth.userInfoRequest(as, client, tokens.access);
    const info = await oauth.processUserInfoResponse(as, client, tokens.claims.sub, response);
    return { ok: true, status: response.status, sub: info.sub, email: info.email };
  } catch (err) {
    return describe(err);
  }
}

// which: "current" (the newest refresh token) or "previous" (one already rotated out, as a
// second tab or a stale copy in storage would present it).
async function refresh(which = 'current') {
  const as = await authorizationServer();
  const list = tokens.refresh;
  const token = which === 'previous' ? list[list.length - 2] : list[list.length - 1];
  if (!token) return { ok: false, error: 'no_refresh_token' };
  try {
    const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, token);
    const result = await oauth.processRefreshTokenResponse(as, client, response);
    tokens.access = result.access_token;
    const rotated = Boolean(result.refresh_token) && result.refresh_token !== token;
    if (result.refresh_token) tokens.refresh.push(result.refresh_token);
    return { ok: true, status: response.status, rotated };
  } catch (err) {
    return describe(err);
  }
}

window.spa = { login, userinfo, refresh, refreshTokens: () => tokens.refresh.length };

const attempts = [];

function Callback() {
  const [, setTick] = useState(0);
  const once = useRef(false);
  useEffect(() => {
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
    if (!pending) {
      attempts.push({ ok: false, error: 'no_pending_sign_in' });
      setTick((n) => n + 1);
      return;
    }
    if (pending.variant !== 'unguarded') {
      if (once.current) return; // the fix: StrictMode runs this effect twice, redeem once
      once.current = true;
    }
    const attempt = { started: performance.now() };
    attempts.push(attempt);
    redeem(pending)
      .then((r) => Object.assign(attempt, r))
      .catch((err) => Object.assign(attempt, describe(err)))
      .finally(() => {
        attempt.finished = performance.now();
        if (attempt.ok) sessionStorage.removeItem(PENDING);
        setTick((n) => n + 1);
      });
  }, []);
  const done = attempts.length > 0 && attempts.every((a) => 'ok' in a);
  const result = {
    signed_in: attempts.some((a) => a.ok),
    attempts: attempts.map(({ ok, status, error, error_description, refresh_token }) => ({
      ok, status, error, error_description, refresh_token,
    })),
    id_token_claims: tokens.claims && {
      iss: tokens.claims.iss, aud: tokens.claims.aud, sub: tokens.claims.sub, nonce: tokens.claims.nonce,
    },
  };
  return (
    <main>
      <h1 id="title">{done ? (result.signed_in ? `Signed in as ${tokens.claims.sub}` : 'Sign-in failed') : 'Signing in'}</h1>
      <pre id="result" data-phase={done ? 'done' : 'pending'}>{JSON.stringify(result, null, 2)}</pre>
    </main>
  );
}

let loginStarted = false;

function Login() {
  useEffect(() => {
    const variant = new URLSearchParams(window.location.search).get('variant') || 'guarded';
    if (variant !== 'unguarded') {
      if (loginStarted) return; // the fix: StrictMode runs this effect twice, start one sign-in
      loginStarted = true;
    }
    login(variant).catch((err) => {
      document.getElementById('result').textContent = JSON.stringify(describe(err));
    });
  }, []);
  return <pre id="result" data-phase="redirecting">{'{}'}</pre>;
}

function Home() {
  return <h1 id="title">authtrace e2e SPA</h1>;
}

const route = window.location.pathname;
const Page = route === '/callback' ? Callback : route === '/login' ? Login : Home;
// StrictMode is on, as in a project scaffolded by Vite or create-react-app: in a development
// build it mounts every component twice to surface effects that are not idempotent.
createRoot(document.getElementById('root')).render(<StrictMode><Page /></StrictMode>);
