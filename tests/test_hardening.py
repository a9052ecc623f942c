"""Hardening (issue 7, items 1 and 6): bad input never costs a traceback or a good hop, decoders never
raise and never let a secret through, and the database is private.

The corpus (tests/corpus.py) goes through the real command line in one `authtrace import` run and,
for precise failures, through `import_file` in-process. Hypothesis drives every decoder and
`flow_to_hops`. The bugs it found are fixed; their tests stay as regression tests.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import sqlite3
import stat
import string
import subprocess
import sys
import time
from urllib.parse import quote, urlencode

import brotli
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.flow import Error
from mitmproxy.test import taddons, tflow

from authtrace.addons import capture
from authtrace.addons.context import CaptureContext
from authtrace.addons.decode import decode_jwt, decode_state, error_fields, message, text_error, www_authenticate
from authtrace.addons.hops import flow_to_hops
from authtrace.addons.importers import CaptureError, import_file
from authtrace.addons.secrets import PASSWORD_NAMES, SECRET_NAMES, Fingerprinter
from authtrace.store import db
from authtrace.store.records import ErrorAnswer, StateInfo, to_json

import corpus
from builders import API, APP, IDP, TENANT, flow, signin_flows

CLI = [sys.executable, "-m", "authtrace"]
KEY = b"\x11" * 32


# ---- 1. the bad-input corpus ------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return corpus.build(tmp_path_factory.mktemp("corpus"))


def _session_hops(dbfile) -> dict[str, int]:
    con = sqlite3.connect(dbfile)
    try:
        return dict(con.execute("select source, hops from capturesession").fetchall())
    finally:
        con.close()


def _check_hops(case, got: int | None) -> str | None:
    if case.hops is None:
        return None if got is None else f"{case.name}: a session was created ({got} hops) for a non-capture"
    if got is None:
        return f"{case.name}: no session, expected {case.hops} hops"
    ok = got >= case.hops if case.at_least else got == case.hops
    return None if ok else f"{case.name}: {got} hops kept, expected {'>= ' if case.at_least else ''}{case.hops}"


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


MEMORY_LIMIT = 3 << 30  # the whole corpus needs < 400 MB; a memory blow-up fails instead of stalling the host


def test_corpus_in_process_keeps_every_good_hop(bad_inputs, tmp_path):
    engine = db.open_db(str(tmp_path / "inproc.db"))
    failures = []
    for case in bad_inputs:
        if case.isolate:
            continue
        try:
            res = import_file(engine, case.path)
            bad, got, msg = res.problem is not None, res.hops, res.problem or ""
        except CaptureError as e:
            bad, got, msg = True, None, str(e)
        except Exception as e:  # the bug this test is for
            failures.append(f"{case.name}: {type(e).__name__}: {e}")
            continue
        if case.bad is not None and bad != case.bad:
            failures.append(f"{case.name}: reported {'a problem' if bad else 'no problem'}: {msg}")
        if bad and case.needle and case.needle not in msg:
            failures.append(f"{case.name}: complaint lacks {case.needle!r}: {msg}")
        if bad and case.path not in msg:
            failures.append(f"{case.name}: complaint does not name the file: {msg}")
        failures.append(_check_hops(case, got))
    failures = [f for f in failures if f]
    assert not failures, "\n".join(failures)


def test_corpus_through_the_cli(bad_inputs, tmp_path):
    """One `authtrace import` over the whole corpus: no traceback, exactly one sentence on stderr per
    damaged or unusable file (naming it), exit 2, and the hops of every file in the database."""
    dbfile = tmp_path / "cli.db"
    t = time.monotonic()
    out = subprocess.run(CLI + ["import", *[c.path for c in bad_inputs], "--db", str(dbfile)],
                         capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory)
    elapsed = time.monotonic() - t
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    failures = [f"stray stderr line: {ln}" for ln in lines if not ln.startswith("authtrace: ")]
    sessions = _session_hops(dbfile)
    for case in bad_inputs:
        named = [ln for ln in lines if ln.startswith((f"authtrace: {case.path} ", f"authtrace: {case.path}:"))]
        if case.bad is True and len(named) != 1:
            failures.append(f"{case.name}: {len(named)} stderr lines name it, expected one sentence")
        if case.bad is False and named:
            failures.append(f"{case.name}: complained about a good file: {named}")
        if case.bad is None and len(named) > 1:
            failures.append(f"{case.name}: {len(named)} stderr lines")
        for ln in named:
            if not ln.rstrip().endswith(".") or (case.needle and case.needle not in ln):
                failures.append(f"{case.name}: not the expected one sentence: {ln}")
        failures.append(_check_hops(case, sessions.get(os.path.abspath(case.path))))
    failures = [f for f in failures if f]
    assert not failures, "\n".join(failures)
    assert elapsed < 120, f"the corpus took {elapsed:.0f}s"


def test_good_but_odd_files_exit_0(bad_inputs, tmp_path):
    good = [c.path for c in bad_inputs if c.bad is False]
    assert len(good) > 30
    out = subprocess.run(CLI + ["import", *good, "--db", str(tmp_path / "good.db")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-3000:]
    assert len(out.stdout.splitlines()) == len(good)


DEEP_SCRIPT = r"""
import resource, sys
from authtrace.addons.importers import import_file
from authtrace.store import db
d = sys.argv[1]
open(d + "/deep.har", "wb").write(b'{"log": {"entries": [' + b"[" * 30_000)
engine = db.open_db(d + "/x.db")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = import_file(engine, d + "/deep.har")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, res.hops, bool(res.problem))
"""


def test_deeply_nested_damage_costs_little_memory(tmp_path):
    """A 30 KB truncated HAR nested 30,000 deep: salvaging entries before the damage once took 2 GB
    (ijson's memory grows with the square of the depth; 300 KB would take ~200 GB)."""
    out = subprocess.run([sys.executable, "-c", DEEP_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, preexec_fn=_limit_memory)
    assert out.returncode == 0, out.stderr[-2000:]
    grew_mb, hops, problem = out.stdout.split()
    assert int(grew_mb) < 100 and hops == "0" and problem == "True"


def test_50MB_body_in_a_live_flow():
    """50 MB bodies through the live path: a token request padded to 50 MB, an API upload of 50 MB with a
    50 MB answer. Each stays one hop, decoded in bounded time; what is kept is bounded by MAX_BODY."""
    flows = signin_flows()
    token, api = flows[4], flows[6]
    token.request.raw_content += b"&padding=" + b"p" * corpus.BIG
    api.request.raw_content = b'{"input":"' + b"i" * corpus.BIG + b'"}'
    api.response.raw_content = b'{"id":"r1","output":"' + b"o" * corpus.BIG + b'"}'
    ctx = CaptureContext(KEY)
    t = time.monotonic()
    hops = [h for f in (token, api) for h in flow_to_hops(f, ctx)]
    assert time.monotonic() - t < 10
    assert [h.role for h in hops] == ["token", "api"]
    assert hops[0].params.form["grant_type"] == "authorization_code"
    assert hops[0].code_fp and hops[1].tokens[0].aud == ("https://ai.azure.com",)
    for h in hops:
        assert len(json.dumps(to_json(h))) < 2.5 * 1024 * 1024


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd", "deflate"])
def test_compressed_bodies_live(enc):
    f = signin_flows()[4]
    f.request.encode(enc)
    f.response.encode(enc)
    assert f.request.raw_content != f.request.get_content()
    hops = flow_to_hops(f, CaptureContext(KEY))
    assert hops[0].role == "token" and {t.kind for t in hops[0].tokens} >= {"access_token", "id_token"}


@pytest.mark.parametrize("claimed,actual", [("gzip", None), ("br", "gzip"), ("zstd", "br"), ("gzip", "zstd"),
                                            ("identity, gzip", None), ("x-unknown", None)])
def test_lying_content_encoding_live(claimed, actual):
    f = signin_flows()[4]
    raw = f.response.raw_content
    comp = {None: lambda b: b, "gzip": gzip.compress, "br": brotli.compress,
            "zstd": zstandard.ZstdCompressor().compress}[actual]
    f.response.raw_content = comp(raw)
    f.response.headers["content-encoding"] = claimed
    f.request.headers["content-encoding"] = claimed  # the form body is plain
    hops = flow_to_hops(f, CaptureContext(KEY))
    assert [h.role for h in hops] == ["token"]


def test_http2_pseudo_headers_and_websocket_live():
    flows = signin_flows()
    for f in flows:
        f.request.http_version = "HTTP/2.0"
        f.request.headers.insert(0, ":authority", f.request.host)
        f.request.headers.insert(0, ":path", f.request.path)
    ws = tflow.twebsocketflow()
    ws.request.headers["Authorization"] = "Bearer ws-token-value-123"
    ctx = CaptureContext(KEY)
    assert [h.role for f in flows + [ws] for h in flow_to_hops(f, ctx)] == \
        ["authorize", "login", "callback", "token", "jwks", "api", "api"]


# ---- 1b. property tests over every decoder ------------------------------------------------------

# AUTHTRACE_PROP_EXAMPLES=5000 runs a deeper search (the default keeps the suite fast)
EXAMPLES = int(os.environ.get("AUTHTRACE_PROP_EXAMPLES") or 300)
PROPS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much])
TOKEN_CHARS = string.ascii_letters + string.digits + "-_"
# a planted secret: token-like, and starting with "Q", which the noise strategies never produce
secret = st.text(TOKEN_CHARS + ".~", min_size=12, max_size=60).map(lambda s: "Q" + s)
noise = st.text(st.characters(exclude_characters="Q"), max_size=80)
ascii_noise = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="Q[]"), max_size=40)
names = st.sampled_from(sorted(SECRET_NAMES | PASSWORD_NAMES))
cased = st.tuples(names, st.sampled_from([str.lower, str.upper, str.title])).map(lambda t: t[1](t[0]))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | noise,
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(noise, c, max_size=4), max_leaves=8)


def b64(x) -> str:
    raw = x if isinstance(x, bytes) else json.dumps(x).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


jwt_header = st.fixed_dictionaries({"alg": st.sampled_from(["RS256", "HS256", "none", "", "ES256"]) | json_values},
                                   optional={"kid": json_values | st.text(TOKEN_CHARS), "typ": json_values,
                                             "crit": json_values, "jku": noise})
jwt_like = st.builds(lambda h, c, s: f"{b64(h)}.{b64(c)}.{s}", jwt_header | json_values | st.binary(max_size=40),
                     st.dictionaries(noise, json_values, max_size=5) | json_values | st.binary(max_size=40),
                     st.text(TOKEN_CHARS, max_size=40))
signature = st.text(TOKEN_CHARS, min_size=12, max_size=60).map(lambda s: "Q" + s)
claims = st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=8), ascii_noise, max_size=4)
signed_jwt = st.builds(lambda c, s: f"{b64({'alg': 'RS256', 'kid': 'k1'})}.{b64(c)}.{s}", claims, signature)


def planted(name: str, value: str) -> st.SearchStrategy[str]:
    """The ways free text carries a secret: name=value, JSON (plain, escaped once, HTML-escaped), Bearer."""
    return st.sampled_from([f"{name}={value}", f'"{name}": "{value}"', f"'{name}':'{value}'", f"{name} : {value}",
                            f'\\"{name}\\":\\"{value}\\"', f"&quot;{name}&quot;:&quot;{value}&quot;",
                            f"Bearer {value}", f"bearer {value}", f"DPoP {value}"])


@st.composite
def text_with_secret(draw):
    value = draw(secret)
    inner = draw(cased.flatmap(lambda n: planted(n, value)))
    return f"{draw(noise)} {inner} {draw(noise)}", value


def _assert_secret_free(out, value: str):
    blob = json.dumps(out, ensure_ascii=False, default=str)
    assert value not in blob and quote(value, safe="") not in blob, blob[:2000]


@PROPS
@given(st.one_of(st.text(), jwt_like, signed_jwt, st.text(TOKEN_CHARS + ".", max_size=300)))
def test_prop_decode_jwt_never_raises(token):
    out = decode_jwt(token)
    assert out is None or (isinstance(out[0], dict) and isinstance(out[1], dict))


@PROPS
@given(st.one_of(st.text(), jwt_like, json_values.map(json.dumps), json_values.map(b64),
                 st.builds(lambda v, tail: f"{b64(v)}|{tail}", json_values, noise)), text_with_secret())
def test_prop_decode_state_never_raises(state, planted_text):
    fpr = Fingerprinter(KEY)
    out = decode_state(state, fpr)
    assert out is None or isinstance(out, StateInfo)
    json.dumps(to_json(out))  # goes to a JSON column
    text, value = planted_text
    msal = decode_state(b64({"id": "x", "meta": {"interactionType": "redirect"}}) + "|" + text, fpr)
    assert msal.format == "msal"
    _assert_secret_free(msal.user_state, value)


@PROPS
@given(st.dictionaries(noise, json_values, max_size=6), st.sampled_from(["error_description", "error", "suberror",
                                                                         "claims", "error_uri"]),
       text_with_secret(), st.booleans())
def test_prop_error_fields(extra, field, planted_text, azure_style):
    fpr = Fingerprinter(KEY)
    text, value = planted_text
    assert error_fields(extra, fpr) is None or isinstance(error_fields(extra, fpr), ErrorAnswer)
    src = {**extra, "error": "invalid_grant", field: text}
    if azure_style:
        src = {**extra, "error": {"code": "InvalidAuthenticationToken", "message": text}}
    out = error_fields(src, fpr)
    _assert_secret_free(to_json(out), value)


@PROPS
@given(noise, text_with_secret(), st.sampled_from(["", "<html><title>Error</title><body>", "AADSTS50011: ",
                                                   '{"error":"x","error_description":"AADSTS70008: ']))
def test_prop_text_error_and_message(prefix, planted_text, wrapper):
    fpr = Fingerprinter(KEY)
    text, value = planted_text
    body = wrapper + prefix[:50] + " " + text + " trace id: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert text_error(prefix, fpr) is None or isinstance(text_error(prefix, fpr), ErrorAnswer)
    _assert_secret_free(to_json(text_error(body, fpr)), value)
    _assert_secret_free(message(body, fpr), value)
    _assert_secret_free(message(body, fpr, limit=100_000), value)


@PROPS
@given(noise, secret, cased, st.sampled_from(["Bearer", "DPoP", "Basic", "Negotiate", ""]))
def test_prop_www_authenticate(junk, value, name, scheme):
    fpr = Fingerprinter(KEY)
    assert isinstance(www_authenticate(junk, fpr), dict)
    header = f'{scheme} realm="x", error="invalid_token", {name}="{value}", error_description="bad"'
    _assert_secret_free(www_authenticate(header, fpr), value)
    _assert_secret_free(www_authenticate(f"{scheme} {name}={value}", fpr), value)


@st.composite
def url_with_secrets(draw):
    value = draw(secret)
    pairs = draw(st.lists(st.tuples(st.text(string.ascii_letters + "_-", min_size=1, max_size=12), ascii_noise),
                          max_size=4))
    where = draw(st.sampled_from(["query", "fragment", "both", "userinfo"]))
    name = draw(cased)
    q = pairs + ([(name, value)] if where in ("query", "both") else [])
    frag = ([(name, value)] + pairs) if where in ("fragment", "both") else []
    host = draw(st.sampled_from([IDP, "app.test:8443", "[::1]:8080", "127.0.0.1", "xn--bcher-kva.example"]))
    user = f"svc:{value}@" if where == "userinfo" else ""
    path = "/" + quote(draw(ascii_noise))
    url = f"https://{user}{host}{path}?{urlencode(q)}" + (f"#{urlencode(frag)}" if frag else "")
    return url, value


@PROPS
@given(url_with_secrets(), st.text())
def test_prop_fingerprinter_url(url_secret, junk):
    fpr = Fingerprinter(KEY)
    url, value = url_secret
    assert isinstance(fpr.url(junk), str)
    _assert_secret_free(fpr.url(url), value)


@PROPS
@given(text_with_secret(), st.text())
def test_prop_fingerprinter_text(planted_text, junk):
    fpr = Fingerprinter(KEY)
    text, value = planted_text
    assert isinstance(fpr.text(junk), str)
    _assert_secret_free(fpr.text(text), value)


@PROPS
@given(cased, secret, st.lists(st.tuples(noise, noise), max_size=5), signed_jwt, noise)
def test_prop_fingerprinter_value_and_params(name, value, others, token, any_name):
    fpr = Fingerprinter(KEY)
    _assert_secret_free(fpr.value(name, value), value)
    sig = token.rsplit(".", 1)[1]
    _assert_secret_free(fpr.value(any_name, token), sig)  # a JWT under any name loses its signature
    out = fpr.params(others + [(name, value), (any_name + "x", token)])
    _assert_secret_free(out, value)
    _assert_secret_free(out, sig)
    for k, v in others:
        assert isinstance(fpr.value(k, v), str)


# flow_to_hops on random requests -------------------------------------------------------------------

HOSTS = [IDP, APP, API, "graph.microsoft.com", "127.0.0.1", "accounts.google.com", "dev-1.okta.com",
         "api.agent-oauth.azureml.ms", "token.botframework.com", "directline.botframework.com", "example.com"]
PATHS = ["/", "/authorize", f"/{TENANT}/oauth2/v2.0/authorize", f"/{TENANT}/oauth2/v2.0/token", "/token",
         "/.well-known/openid-configuration", "/discovery/v2.0/keys", "/jwks", "/signin-oidc", "/callback",
         "/logout", "/oauth2/v2.0/logout", "/devicecode", "/userinfo", "/api/things", "/agent-oauth/v1.0/redirect",
         "/.auth/web/redirect", "/v3/directline/tokens/generate", "/static/app.js", "/login", "/saml/acs"]
PLAIN_NAMES = ["client_id", "response_type", "redirect_uri", "state", "nonce", "scope", "error", "error_description",
               "session_state", "iss", "token_type", "code_challenge", "post_logout_redirect_uri", "request_uri",
               "prompt", "login_hint", "response_mode", "grant_type", "client_info", "resource", "expires_in"]
PLAIN_VALUES = st.sampled_from(["code", "code id_token", "authorization_code", "refresh_token", "bearer", "openid",
                                f"https://{APP}/signin-oidc", "AADSTS50011: redirect mismatch", "consent"])
PLAIN_VALUES = PLAIN_VALUES | ascii_noise


@st.composite
def random_flow(draw):
    """A random, plausible request and answer, with secrets planted only where secrets go."""
    planted: list[str] = []

    def sec() -> str:
        v = draw(st.one_of(secret, signed_jwt))
        planted.append(v.rsplit(".", 1)[1] if v.count(".") == 2 and v.startswith("eyJ") else v)
        return v

    def params(n_max=5) -> list[tuple[str, str]]:
        out = []
        for _ in range(draw(st.integers(0, n_max))):
            if draw(st.booleans()):
                out.append((draw(st.sampled_from(PLAIN_NAMES)), draw(PLAIN_VALUES)))
            else:
                out.append((draw(cased), sec()))
        return out

    host, path = draw(st.sampled_from(HOSTS)), draw(st.sampled_from(PATHS))
    method = draw(st.sampled_from(["GET", "POST", "POST", "PUT", "HEAD", "OPTIONS", "DELETE"]))
    query = params()
    url = f"https://{host}{path}" + (f"?{urlencode(query)}" if query else "")
    headers: list[tuple[str, str]] = []
    if draw(st.booleans()):
        scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER", "DPoP", "Basic", "Negotiate", "token"]))
        cred = sec()
        if scheme == "Basic":
            cred = base64.b64encode(f"client-1:{cred}".encode()).decode()
            planted.append(cred)
        headers.append((draw(st.sampled_from(["Authorization", "authorization", "AUTHORIZATION", "aUtHoRiZaTiOn"])),
                        f"{scheme} {cred}"))
    if draw(st.booleans()):
        headers.append(("Cookie", "; ".join(f"{n}={sec()}" for n in draw(st.lists(
            st.text(string.ascii_letters, min_size=1, max_size=8), min_size=1, max_size=3)))))
    if draw(st.booleans()):
        ref = draw(st.sampled_from([f"https://{IDP}/", f"https://{APP}/x", "https://evil.test/"]))
        headers.append(("Referer", ref + "?" + urlencode(params(2)) + "#" + urlencode(params(2))))
    for h, v in draw(st.lists(st.sampled_from([
            ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document"), ("sec-fetch-site", "cross-site"),
            ("origin", f"https://{IDP}"), ("accept", "text/html"), ("user-agent", "Mozilla/5.0 (X11)"),
            ("x-ms-client-request-id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"), ("traceparent", "00-ab-cd-01"),
            (":authority", host), ("dpop", "eyJhbGciOiJFUzI1NiJ9.eyJodG0iOiJQT1NUIn0.c2ln")]), max_size=6)):
        headers.append((h, v))
    body = b""
    kind = draw(st.sampled_from(["none", "form", "json", "multipart", "binary", "text"]))
    if method not in ("GET", "HEAD") and kind != "none":
        pairs = params(6)
        if kind == "form":
            body = urlencode(pairs).encode()
            headers.append(("content-type", draw(st.sampled_from(["application/x-www-form-urlencoded", ""]))))
        elif kind == "json":
            body = json.dumps(dict(pairs)).encode()
            headers.append(("content-type", "application/json"))
        elif kind == "multipart":
            body = b"".join(f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                            for k, v in pairs) + b"--b--\r\n"
            headers.append(("content-type", "multipart/form-data; boundary=b"))
        elif kind == "binary":
            body = draw(st.binary(max_size=200))
        else:
            body = draw(ascii_noise).encode()
        enc = draw(st.sampled_from([None, None, "gzip", "br", "zstd", "lie"]))
        if enc == "lie":
            headers.append(("content-encoding", draw(st.sampled_from(["gzip", "br", "zstd", "deflate"]))))
    else:
        enc = None
    req = http.Request.make(method, url, body, [(k.encode(), v.encode()) for k, v in headers])
    if enc in ("gzip", "br", "zstd"):
        req.encode(enc)
    f = flow("GET", "https://placeholder.test/")
    f.request = req
    req.timestamp_start, req.timestamp_end = 1_780_000_000.0, 1_780_000_000.1

    outcome = draw(st.sampled_from(["response", "response", "response", "error"]))
    if outcome == "error":
        f.response = None
        f.error = Error(draw(ascii_noise) or "connection reset")
        return f, planted
    status = draw(st.sampled_from([200, 201, 204, 302, 303, 400, 401, 403, 404, 500]) | st.integers(100, 599))
    rh: list[tuple[str, str]] = []
    if draw(st.booleans()):
        target = draw(st.sampled_from([f"https://{APP}/signin-oidc", f"https://{APP}/cb", "/relative", "app://x"]))
        q, fr = params(3), params(3)
        rh.append(("Location", target + (f"?{urlencode(q)}" if q else "") + (f"#{urlencode(fr)}" if fr else "")))
    if draw(st.booleans()):
        rh.append(("Set-Cookie", f"{draw(st.sampled_from(['ESTSAUTH', 'session', 'a']))}={sec()}; Path=/; HttpOnly"))
    if draw(st.booleans()):
        rh.append(("WWW-Authenticate", f'Bearer realm="x", error="invalid_token", {draw(cased)}="{sec()}"'))
    rkind = draw(st.sampled_from(["token", "error", "html", "discovery", "jwks", "binary", "empty", "json"]))
    if rkind == "token":
        rbody = json.dumps(dict({"token_type": "Bearer", "expires_in": 3599, "scope": "openid"},
                                **{k: sec() for k in draw(st.lists(st.sampled_from(
                                    ["access_token", "id_token", "refresh_token", "device_code", "token"]),
                                    unique=True, max_size=4))}))
        rh.append(("content-type", "application/json"))
    elif rkind == "error":
        text, v = draw(text_with_secret())
        planted.append(v)
        rbody = json.dumps({"error": draw(st.sampled_from(["invalid_grant", "invalid_client", "x"])),
                            "error_description": "AADSTS70008: expired. " + text, "error_codes": [70008],
                            "trace_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"})
        rh.append(("content-type", draw(st.sampled_from(["application/json", "text/plain", ""]))))
    elif rkind == "html":
        text, v = draw(text_with_secret())
        planted.append(v)
        rbody = f"<html><title>Sign in</title><script>var x=1</script><body>AADSTS50011: {text}</body></html>"
        rh.append(("content-type", "text/html"))
    elif rkind == "discovery":
        rbody = json.dumps({"issuer": f"https://{host}", "authorization_endpoint": f"https://{host}/authorize",
                            "token_endpoint": f"https://{host}/token", "jwks_uri": f"https://{host}/jwks",
                            "end_session_endpoint": draw(ascii_noise)})
        rh.append(("content-type", "application/json"))
    elif rkind == "jwks":
        rbody = json.dumps({"keys": draw(st.lists(st.fixed_dictionaries(
            {"kty": st.sampled_from(["RSA", "oct", "EC", "x"]), "kid": st.text(TOKEN_CHARS, max_size=8)},
            optional={"n": st.text(TOKEN_CHARS), "e": st.just("AQAB"), "k": st.text(TOKEN_CHARS)}), max_size=3))})
        rh.append(("content-type", "application/json"))
    elif rkind == "binary":
        rbody = draw(st.binary(max_size=300))
    elif rkind == "json":
        rbody = json.dumps(draw(json_values))
        rh.append(("content-type", "application/json"))
    else:
        rbody = ""
    # a lone surrogate in the noise becomes the invalid UTF-8 a broken server sends (it made this
    # strategy itself raise now and then)
    f.response = http.Response.make(status, rbody.encode("utf-8", "surrogatepass") if isinstance(rbody, str) else rbody,
                                    [(k.encode(), v.encode()) for k, v in rh])
    renc = draw(st.sampled_from([None, None, "gzip", "br", "zstd", "lie"]))
    if renc == "lie":
        f.response.headers["content-encoding"] = draw(st.sampled_from(["gzip", "br", "zstd"]))
    elif renc:
        f.response.encode(renc)
    f.response.timestamp_start, f.response.timestamp_end = 1_780_000_000.2, 1_780_000_000.3
    return f, planted


@pytest.fixture(scope="module")
def mem_engine():
    engine = db.open_db("sqlite://")
    return engine, db.new_session(engine, "props", "props", "har")


@settings(PROPS, max_examples=EXAMPLES)
@given(st.lists(random_flow(), min_size=1, max_size=4))
def test_prop_flow_to_hops_never_raises_never_leaks(mem_engine, flows):
    engine, sid = mem_engine
    ctx = CaptureContext(KEY)
    for f, planted in flows:
        hops = flow_to_hops(f, ctx)
        for h in hops:
            assert h.role in ("authorize", "login", "callback", "token", "api", "userinfo", "discovery",
                                     "jwks", "logout", "device", "error")
            blob = json.dumps(to_json(h), ensure_ascii=False)
            for v in planted:
                assert v not in blob, f"planted secret {v!r} in {blob[:3000]}"
        db.write_hops(engine, sid, hops)  # storable: JSON-serialisable, valid text


# ---- bugs found by this suite, fixed in hops.py, capture.py and store/db.py: regression tests -------

def _authorize_with_location(location: str):
    return flow("GET", f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize?client_id=c&response_type=code&state=s1",
                status=302, resp_headers={"location": location})


def test_malformed_location_keeps_the_hop():
    hops = flow_to_hops(_authorize_with_location("http://[::1/cb?code=abc&state=s1"), CaptureContext(KEY))
    assert [h.role for h in hops] == ["authorize"]


def test_malformed_referer_keeps_the_hop():
    f = flow("GET", f"https://{APP}/signin-oidc?code=abc&state=s1", headers={"referer": "http://[bad/"})
    assert [h.role for h in flow_to_hops(f, CaptureContext(KEY))] == ["callback"]


def test_malformed_discovery_document_keeps_the_hop():
    f = flow("GET", f"https://{IDP}/.well-known/openid-configuration", browser=False,
             resp_headers={"content-type": "application/json"},
             resp_body=json.dumps({"issuer": "x", "authorization_endpoint": "https://[bad/authorize"}))
    assert [h.role for h in flow_to_hops(f, CaptureContext(KEY))] == ["discovery"]


@pytest.mark.parametrize("keys", [["not-a-key"], [{"kty": "oct", "k": "AAAA", "kid": ["x"]}]])
def test_garbage_jwks_keeps_the_hop(keys):
    f = flow("GET", f"https://{IDP}/common/discovery/keys", browser=False,
             resp_headers={"content-type": "application/json"}, resp_body=json.dumps({"keys": keys}))
    assert [h.role for h in flow_to_hops(f, CaptureContext(KEY))] == ["jwks"]


def test_live_hop_with_undecodable_header_bytes_keeps_the_batch(tmp_path):
    a = capture.AuthTrace()
    dbp = str(tmp_path / "live.db")
    with taddons.context(a) as tctx:
        tctx.configure(a, authtrace_db=dbp, authtrace_print=False)
        a.running()
        flows = signin_flows()
        flows[0].request.headers[b"user-agent"] = b"Mozilla/5.0 (\xe9t\xe9)"  # Latin-1, not UTF-8
        for f in flows:
            a.requestheaders(f)
            a.response(f)
        a.done()
    assert [h.role for h in db.load_hops(db.open_db(dbp), 1)] == ["authorize", "login", "callback", "token",
                                                                   "jwks", "api"]


def test_decode_failure_log_line_carries_no_secret(tmp_path, monkeypatch, caplog):
    def broken(flow, ctx):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(capture, "flow_to_hops", broken)
    a = capture.AuthTrace()
    with taddons.context(a) as tctx:
        tctx.configure(a, authtrace_db=str(tmp_path / "x.db"), authtrace_print=False)
        a.running()
        f = flow("GET", f"https://{APP}/signin-oidc?code=RAW-CODE-SECRET-123&state=s1")
        a.requestheaders(f)
        with caplog.at_level("WARNING"):
            a.response(f)
        a.done()
    assert "could not decode" in caplog.text
    assert "RAW-CODE-SECRET-123" not in caplog.text


BOMB_SCRIPT = r"""
import resource, sys, zlib
sys.path.insert(0, sys.argv[1])
from builders import signin_flows
from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops
f = signin_flows()[4]
c = zlib.compressobj(9, zlib.DEFLATED, 31)
chunk = b" " * (1 << 20)
bomb = c.compress(f.response.raw_content[:-1] + b', "pad": "') + b"".join(c.compress(chunk) for _ in range(400))
bomb += c.compress(b'"}') + c.flush()
f.response.raw_content = bomb
f.response.headers["content-encoding"] = "gzip"
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hops = flow_to_hops(f, CaptureContext(b"k" * 32))
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(len(bomb), grew // 1024, [h.role for h in hops])
"""


def test_decompression_bomb_is_bounded():
    out = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, os.path.dirname(__file__)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    size, grew_mb, roles = out.stdout.split(maxsplit=2)
    assert int(size) < 1_000_000 and "token" in roles
    assert int(grew_mb) < 100, f"decoding a {int(size) // 1024} KB body grew the process by {grew_mb} MB"


# ---- 6. the database is private -------------------------------------------------------------------

def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_database_created_0600_even_with_a_permissive_umask(tmp_path):
    har = tmp_path / "s.har"
    from builders import to_har

    har.write_text(json.dumps(to_har(signin_flows())))
    dbfile = tmp_path / "new.db"
    out = subprocess.run(CLI + ["import", str(har), "--db", str(dbfile)], capture_output=True, text=True,
                         timeout=60, preexec_fn=lambda: os.umask(0))
    assert out.returncode == 0, out.stderr
    assert _mode(dbfile) == 0o600
    for side in tmp_path.glob("new.db-*"):  # -wal / -shm, while they exist
        assert _mode(side) & 0o077 == 0, f"{side.name} is {oct(_mode(side))}"
    assert "warning" not in out.stderr


def test_opening_a_database_others_can_read_warns(tmp_path):
    dbfile = tmp_path / "shared.db"
    db.open_db(str(dbfile)).dispose()
    os.chmod(dbfile, 0o644)
    out = subprocess.run(CLI + ["sessions", "--db", str(dbfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    warning = [ln for ln in out.stderr.splitlines() if "warning" in ln]
    assert len(warning) == 1 and str(dbfile) in warning[0] and "chmod 600" in warning[0], out.stderr
    os.chmod(dbfile, 0o600)
    out = subprocess.run(CLI + ["sessions", "--db", str(dbfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == ""
