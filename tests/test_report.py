"""The shareable timeline: verdict first, hostile input inert, strict CSP, leak check, real Chromium."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest

from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops
from authtrace.addons.importers import import_file
from authtrace.reports.diagnose import assemble
from authtrace.reports.html import render_html, write_report
from authtrace.reports.leakcheck import LeakError, find_leaks
from authtrace.store import db
from authtrace.store.records import (
    Answer,
    ErrorAnswer,
    Finding,
    Hop,
    Initiator,
    Params,
    Role,
    Severity,
    StateInfo,
    Token,
)

from builders import API, APP, CLIENT_ID, IDP, TENANT, flow, signin_flows, to_har

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
TITLE = "The authorization code was already redeemed"
HOSTILE = " | ".join([
    "<script>window.__pwned=1;alert(1)</script>",
    '"><img src=x onerror="window.__pwned=1;alert(1)">',
    "javascript:alert(1)",
    "</style><script>window.__pwned=2</script>",
    "{{ 7*7 }}",
    "'><svg onload=alert(1)>",
    "</textarea></details></summary><a href=\"https://evil.example/x\">click</a>",
])


# ---- sessions to render ---------------------------------------------------------------------

def _store(engine, flows, name="capture.har", flows_seen=None):
    ctx = CaptureContext(db.fingerprint_key(engine))
    sid = db.new_session(engine, name, f"/captures/{name}", "har")
    batch = [h for f in flows for h in flow_to_hops(f, ctx)]
    db.write_hops(engine, sid, batch)
    db.set_signatures(engine, sid, ctx.signatures.take_updates())
    db.update_session(engine, sid, flows_seen=flows_seen if flows_seen is not None else len(flows))
    return db.load_session(engine, sid), db.load_hops(engine, sid)


def report_of(session, hops, findings=(), notes=(), redact_pii=False) -> str:
    """The report of these records, as `authtrace report` makes it (findings given, not checked)."""
    a = assemble(session, hops, list(findings))
    a.notes = list(notes)
    return render_html(a, redact_pii=redact_pii)


def reused_code_session(engine):
    """One sign-in, then the same callback presented again 5 s later: the app redeems the code a
    second time and Entra answers AADSTS54005."""
    t0 = time.time() - 600
    code = "0.AXoA-reused-secret-code"
    flows = signin_flows(t0, code=code)
    state = next(h.state for f in flows for h in flow_to_hops(f, CaptureContext(b"k" * 32))
                 if h.role == "callback")
    desc = ("AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code "
            "or use an existing refresh token. Trace ID: 0b1c2d3e-aaaa-bbbb-cccc-0123456789ab Correlation ID: "
            "9f8e7d6c-1111-2222-3333-abcdefabcdef Timestamp: 2025-11-26 10:42:03Z")
    flows += [
        flow("POST", f"https://{APP}/signin-oidc", t=t0 + 9, status=500,
             headers={"content-type": "application/x-www-form-urlencoded", "origin": f"https://{IDP}",
                      "referer": f"https://{IDP}/"},
             body=urlencode({"code": code, "state": state}), resp_headers={"content-type": "text/plain"},
             resp_body="Authentication code has already been redeemed. Please re-login."),
        flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token", t=t0 + 9.1, browser=False, status=400,
             headers={"content-type": "application/x-www-form-urlencoded"},
             body=urlencode({"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
                             "redirect_uri": f"https://{APP}/signin-oidc"}),
             resp_headers={"content-type": "application/json"},
             resp_body=json.dumps({"error": "invalid_grant", "error_description": desc, "error_codes": [54005],
                                   "trace_id": "0b1c2d3e-aaaa-bbbb-cccc-0123456789ab",
                                   "correlation_id": "9f8e7d6c-1111-2222-3333-abcdefabcdef"})),
    ]
    session, hops = _store(engine, flows, "reused-code.har", flows_seen=31)
    callbacks = [h for h in hops if h.role == "callback"]
    redemptions = [h for h in hops if h.role == "token"]
    findings = [
        Finding(kind="reused_code", severity=Severity.ERROR, title=TITLE,
                explanation=f"The same authorization code ({hops[2].code_fp}) reached the app's callback twice, "
                            "5.0 s apart. A code can be redeemed once: the second redemption failed with "
                            "AADSTS54005.",
                causes=("The callback was requested twice: a double submit, a prefetch or a link scanner",
                        "Two tabs or webviews completed the same redirect"),
                next_step="Make the callback idempotent: redirect (303) after the first redemption and ignore a "
                          "replay of the same code; the second request's initiator shows who sent it.",
                evidence=(*callbacks, *redemptions), details={"code": hops[2].code_fp, "gap_s": 5.0}),
        Finding(kind="idp_error", severity=Severity.INFO, title="Entra ID error AADSTS54005: code already redeemed",
                explanation="The token endpoint refused a code it had already exchanged.", causes=(),
                next_step="See the finding above.", evidence=(redemptions[-1],)),
    ]
    return session, hops, findings


def hostile_session(engine):
    """Every captured field holds markup, a javascript: URL and template syntax."""
    now = time.time()

    def hop(started, actor, status):
        token = Token(where=HOSTILE, kind=HOSTILE, fingerprint="access_token#0123456789", format=HOSTILE,
                      header={"alg": HOSTILE, HOSTILE: HOSTILE},
                      claims={"aud": HOSTILE, "name": HOSTILE, HOSTILE: HOSTILE, "exp": int(now) - 180,
                              "nonce": HOSTILE})
        return Hop(
            started=started, duration_ms=12.5, role=Role.CALLBACK, method="POST" + HOSTILE,
            url="javascript:alert(1)//" + HOSTILE, host="app.test" + HOSTILE, path="/cb/" + HOSTILE,
            status=status, is_error=True, actor=actor, user_agent=HOSTILE, code_fp="code#0123456789" + HOSTILE,
            state=HOSTILE, nonce=HOSTILE, client_id=HOSTILE,
            initiator=Initiator(site=HOSTILE, referer="javascript:alert(1)", origin=HOSTILE),
            params=Params(query={HOSTILE: HOSTILE, "state": HOSTILE}, json={HOSTILE: HOSTILE}),
            answer=Answer(location="javascript:alert(1)//" + HOSTILE, issued_code=HOSTILE,
                          fields={HOSTILE: HOSTILE}, www_authenticate={"error": HOSTILE}),
            state_info=StateInfo(format=HOSTILE, value={HOSTILE: HOSTILE}),
            error=ErrorAnswer(error=HOSTILE, error_description=HOSTILE, trace_id=HOSTILE, correlation_id=HOSTILE,
                              extra={HOSTILE: HOSTILE}),
            request_headers={HOSTILE: HOSTILE}, response_headers={"content-type": HOSTILE},
            cookies_sent={HOSTILE: HOSTILE}, cookies_set=(HOSTILE,), body_excerpt=HOSTILE, tokens=[token])

    sid = db.new_session(engine, HOSTILE, HOSTILE, "har")
    db.write_hops(engine, sid, [hop(now, "browser", 400), hop(now + 1, "app", None)])
    db.update_session(engine, sid, flows_seen=5, problem=HOSTILE)
    hops = db.load_hops(engine, sid)
    findings = [Finding(kind=HOSTILE, severity=Severity.ERROR, title="Hostile " + HOSTILE, explanation=HOSTILE,
                        causes=(HOSTILE,), next_step=HOSTILE, evidence=tuple(hops), details={HOSTILE: HOSTILE})]
    return db.load_session(engine, sid), hops, findings


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <style>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"
        if self._in_style:
            self.styles.append("")

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles[-1] += data


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    p.close()
    return p


# ---- (a) the cause on the first screen -------------------------------------------------------

def test_reused_code_finding_before_the_timeline(engine):
    session, hops, findings = reused_code_session(engine)
    html = report_of(session, hops, findings)
    verdict = "Sign-in failed: the authorization code was already redeemed"
    assert verdict in html
    assert html.index(verdict) < html.index(f"<h3>{TITLE}</h3>") < html.index('aria-label="Timeline"')
    # each piece of evidence links to its hop, and the hop is there
    for hid in [h.number for h in findings[0].evidence]:
        assert f'href="#hop-{hid}"' in html and f'id="hop-{hid}"' in html
    # every hop, in time order, with Δt from the start
    order = [int(m) for m in re.findall(r'data-hop="(\d+)"', html)]
    assert order == list(range(1, len(hops) + 1)) and [h.started for h in hops] == sorted(h.started for h in hops)
    assert "+4.000 s" in html and "+9.000 s" in html
    # one sign-in: the callbacks, the redemptions and the authorize share a flow tag
    for h in hops:
        if h.role in ("authorize", "callback", "token"):
            block = html[html.index(f'data-hop="{h.number}"'):]
            assert '<span class="ftag f0">F1</span>' in block[:block.index("</summary>")]
    # error fields with the ids a provider asks for, highlighted
    assert '<tr class="hl"><th>trace_id</th><td>0b1c2d3e-aaaa-bbbb-cccc-0123456789ab</td></tr>' in html
    # claims with readable times against the time of the hop; non-auth traffic counted
    assert "valid 60 min more at this hop" in html
    assert f"{31 - len(hops)} flows" in html  # non-auth traffic: flows seen minus auth hops


def test_capture_notes_follow_the_verdict(engine):
    session, hops, findings = reused_code_session(engine)
    note = "No authorize request was captured (recording started mid-sign-in): <state> cannot be compared."
    html = report_of(session, hops, findings, notes=[note])
    at = html.index("No authorize request was captured")
    assert html.index("<h1>") < at < html.index(f"<h3>{TITLE}</h3>")
    assert "&lt;state&gt; cannot be compared" in html


def test_clean_session_says_no_problem(tmp_path, engine):
    (tmp_path / "s.har").write_bytes(orjson.dumps(to_har(signin_flows())))
    res = import_file(engine, str(tmp_path / "s.har"))
    html = report_of(db.load_session(engine, res.session_id), db.load_hops(engine, res.session_id))
    assert "No problem found in 6 auth hops" in html
    assert "1 flow" in html  # 7 flows, 6 of them auth hops


def test_expired_token_reads_as_expired_before_use(engine):
    session, hops, findings = reused_code_session(engine)
    api = next(h for h in hops if h.role == "api")
    for h in hops:
        h.tokens = [dataclasses.replace(t, claims=dict(t.claims, exp=int(api.started) - 180))
                    if t.claims and "exp" in t.claims else t for t in h.tokens]
    html = report_of(session, hops)
    assert "expired 3 min before use" in html
    assert "token exp: expired 3 min before use" in html  # on the API hop's summary line too


def test_two_interleaved_signins_get_two_flow_tags(engine):
    t0 = time.time() - 600
    a = signin_flows(t0, code="code-a", state="state-a-0123456789", nonce="nonce-a")
    # 2 s later (interleaved with the first): a token minted in the same second with the same claims
    # would be the same token, and rightly join the two
    b = signin_flows(t0 + 2, code="code-b", state="state-b-0123456789", nonce="nonce-b")
    session, hops = _store(engine, a + b)
    html = report_of(session, hops)
    flow_of = {}
    for m in re.finditer(r'data-hop="(\d+)".*?</summary>', html, re.S):
        tag = re.search(r'class="ftag f\d">F(\d+)<', m.group(0))
        flow_of[int(m.group(1))] = tag and int(tag.group(1))
    by_state = {}
    for h in hops:
        if h.role in ("authorize", "callback"):
            by_state.setdefault(h.state, set()).add(flow_of[h.number])
    assert sorted(map(sorted, by_state.values())) == [[1], [2]]
    # the back channel joins its sign-in through the code and the tokens it got
    token_hops = [h for h in hops if h.role == "token"]
    assert {flow_of[h.number] for h in token_hops} == {1, 2}
    assert "Sign-in flows</dt><dd>2<" in html


def test_a_token_used_at_many_hops_shows_its_claims_once(engine):
    """30 API calls with one bearer token: the full card (header, every claim) is printed once, at the
    token response; each call prints a short card linking to it, with aud and exp against its own time."""
    t0 = time.time() - 3000
    secrets: dict = {}
    flows = signin_flows(t0, secrets=secrets)
    calls = 30
    for k in range(calls):  # the last call comes after the token's hour: expired before use
        flows.append(flow("GET", f"https://{API}/api/items?page={k}", t=t0 + 10 + (3700 if k == calls - 1 else k),
                          browser=False, status=401 if k == calls - 1 else 200,
                          headers={"authorization": f"Bearer {secrets['access_token']}"},
                          resp_headers={"content-type": "application/json"}, resp_body="{}"))
    session, hops = _store(engine, flows)
    html = report_of(session, hops)
    carried = [(h, t) for h in hops for t in h.tokens]
    fp = next(t.fingerprint for _, t in carried if t.kind == "access_token")
    hexid = fp.split("#")[1]
    uses = [h for h, t in carried if t.fingerprint == fp]
    assert html.count(f'id="tok-{hexid}"') == 1
    assert html.count(f'href="#tok-{hexid}"') == len(uses) - 1 >= calls  # every later use links to it
    assert html.count("<th>scp</th>") == 1 and html.count("<th>appid</th>") == 1  # claims printed once
    assert f"at {len(set(map(id, uses)))} hops (the later ones link here)" in html
    card = html.index(f'id="tok-{hexid}"')
    token_hop = next(h for h in hops if h.role == "token")
    assert html.rindex('data-hop="', 0, card) == html.index(f'data-hop="{token_hop.number}"')  # at its first hop
    # every link in the page lands on an element of the page
    ids = set(re.findall(r' id="([^"]+)"', html))
    assert {h[1:] for h in re.findall(r'href="(#[^"]+)"', html)} <= ids
    # each call still says when the token expires against that call, and flags the expired use
    api = [h for h in hops if h.role == "api" and "/api/items" in h.path]
    assert len(api) == calls
    for h in api:
        block = html[html.index(f'data-hop="{h.number}"'):]
        block = block[:block.index("</details>")]
        assert "<th>aud</th><td>https://ai.azure.com</td>" in block and "aud https://ai.azure.com" in block
        assert ("more at use" in block) != (h is api[-1] and "token exp: expired 2 min before use" in block)
    assert html.count("token exp: expired") == 1
    assert find_leaks(html) == []


def test_empty_session(engine):
    sid = db.new_session(engine, "empty.har", "/captures/empty.har", "har")
    db.update_session(engine, sid, flows_seen=12)
    html = report_of(db.load_session(engine, sid), [])
    assert "No sign-in traffic found: none of the 12 captured flows was an auth hop" in html
    assert "No auth hop in this capture." in html and find_leaks(html) == []


# ---- (b) hostile input is inert ----------------------------------------------------------------

@pytest.mark.parametrize("redact", [False, True])
def test_hostile_strings_render_as_text(engine, redact):
    session, hops, findings = hostile_session(engine)
    html = report_of(session, hops, findings, redact_pii=redact)
    doc = parse(html)
    names = [t for t, _ in doc.tags]
    assert "script" not in names and "img" not in names and "svg" not in names and "textarea" not in names
    assert names.count("style") == 1
    for tag, attrs in doc.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert "src" not in attrs, (tag, attrs)
        if "href" in attrs:
            assert re.fullmatch(r"#(hop|finding)-\d+|#tok-(n\d+|[0-9a-f]+)|#top", attrs["href"]), attrs["href"]
        for v in attrs.values():
            assert "javascript:" not in (v or "").lower()
    lower = html.lower()
    assert "<script" not in lower and "<img" not in lower and "<svg" not in lower
    assert lower.count("</style>") == 1 and lower.count("</details>") == lower.count("<details") == len(hops) + 1
    assert "&lt;script&gt;window.__pwned=1;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__pwned=1;alert(1)&#34;&gt;" in html
    assert "{{ 7*7 }}" in html  # template syntax in data stays literal
    # every kind of field made it into the page (escaped), not silently dropped
    assert html.count("&lt;svg onload=alert(1)&gt;") > 25


# ---- (c) content security policy ---------------------------------------------------------------

def test_csp_hash_matches_the_one_style_and_nothing_loads(engine):
    session, hops, findings = reused_code_session(engine)
    html = report_of(session, hops, findings)
    doc = parse(html)
    metas = [a for t, a in doc.tags if t == "meta" and a.get("http-equiv", "").lower() == "content-security-policy"]
    assert len(metas) == 1
    csp = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in metas[0]["content"].split(";")) if d}
    assert csp["default-src"] == ["'none'"] and csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    assert csp["img-src"] == ["data:"] and "script-src" not in csp
    digest = base64.b64encode(hashlib.sha256(doc.styles[0].encode()).digest()).decode()
    assert csp["style-src"] == [f"'sha256-{digest}'"]
    # the CSP meta comes before anything it governs
    assert html.index('http-equiv="Content-Security-Policy"') < html.index("<style>")
    assert "<script" not in html.lower()
    assert not [a for t, a in doc.tags if "style" in a]  # no style attributes (the hash would not allow them)
    for tag, attrs in doc.tags:
        for name in ("src", "href", "action", "srcset", "data", "poster"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith("#"), (tag, name, value)
        assert tag not in ("link", "iframe", "object", "embed", "base", "form")
    assert not re.search(r"@import|url\(", doc.styles[0])


# ---- (d) leak check ----------------------------------------------------------------------------

def test_real_report_passes_the_leak_check_and_holds_no_secret(tmp_path, engine):
    secrets: dict = {}
    (tmp_path / "s.har").write_bytes(orjson.dumps(to_har(signin_flows(secrets=secrets))))
    res = import_file(engine, str(tmp_path / "s.har"))
    html = report_of(db.load_session(engine, res.session_id), db.load_hops(engine, res.session_id))
    assert find_leaks(html) == []
    for name, value in secrets.items():
        assert value not in html, name
    out = tmp_path / "report.html"
    write_report(html, str(out))
    assert out.read_text(encoding="utf-8") == html


@pytest.mark.parametrize("field,value,kind", [
    ("url", "https://app.contoso.test/signin-oidc?state=x&code=realsecret", "a raw `code` value"),
    ("body_excerpt", "token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlZ21lbnQ", "a signed JWT"),
    ("body_excerpt", '{"refresh_token": "0.AXoA-refresh-secret"}', "a raw `refresh_token` value"),
    ("user_agent", "sent Authorization: Bearer 0.AXoA-opaque-access-token-42", "a Bearer credential"),
    ("params", Params(form={"client_secret": "cs~Secret.Value_123"}), "a raw `client_secret` value"),
    ("params", Params(form={"password": "hunter2-correct-horse"}), "a raw `password` value"),
    ("params", Params(query={"redirect_uri": "https://x/cb?code%3Drealsecret"}), "a raw `code` value"),
])
def test_leak_check_refuses_a_forced_secret(tmp_path, engine, field, value, kind):
    session, hops, findings = reused_code_session(engine)
    victim = next(h for h in hops if h.role == "token")
    setattr(victim, field, value)
    html = report_of(session, hops, findings)
    out = tmp_path / "report.html"
    with pytest.raises(LeakError) as e:
        write_report(html, str(out))
    assert not out.exists() and not list(tmp_path.glob("report.html*"))
    msg = str(e.value)
    assert kind in msg and f"hop {victim.number}" in msg and e.value.path == str(out)
    assert msg.count(". ") == 0 and "\n" not in msg  # one sentence
    assert "realsecret" not in msg and "hunter2" not in msg and "Secret" not in msg


def test_leak_check_names_a_finding_that_quotes_a_secret(tmp_path, engine):
    session, hops, findings = reused_code_session(engine)
    findings[1].explanation = "The app sent code=0.AXoA-reused-secret-code twice."
    with pytest.raises(LeakError, match=r"raw `code` value in finding 2"):
        write_report(report_of(session, hops, findings), str(tmp_path / "r.html"))


def test_leak_check_accepts_fingerprints_and_markers():
    ok = ('<a>code=code#e81657f105&amp;state=1</a> response_type=code&amp;code_challenge=abc '
          'password=[password sent, not stored] password=%5Bpassword+sent%2C+not+stored%5D '
          '&#34;access_token&#34;: &#34;access_token#8f8864ff56&#34; Bearer access_token#8f8864ff56 '
          'WWW-Authenticate: Bearer authorization_uri=&#34;https://login/x&#34;, error=&#34;invalid_token&#34; '
          '<tr><th>code</th><td>code#e81657f105</td></tr> eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. '
          "grant_type=authorization_code; the code was already redeemed")
    assert find_leaks(ok) == []


# ---- PII masking -------------------------------------------------------------------------------

def test_redact_pii_masks_people_and_addresses(engine):
    session, hops, findings = reused_code_session(engine)
    for h in hops:
        h.tokens = [dataclasses.replace(t, claims=dict(t.claims, oid="00000000-aaaa-bbbb-cccc-1234567890ab",
                                                       ipaddr="203.0.113.7")) if t.claims else t for t in h.tokens]
    hops[0].body_excerpt = "seen from 203.0.113.7 and 2001:db8::7 for alice@contoso.test"
    plain = report_of(session, hops, findings)
    assert "alice@contoso.test" in plain and "203.0.113.7" in plain
    html = report_of(session, hops, findings, redact_pii=True)
    for value in ("alice@contoso.test", "alice%40contoso.test", "203.0.113.7", "2001:db8::7",
                  "00000000-aaaa-bbbb-cccc-1234567890ab", "<td>Alice</td>"):
        assert value not in html, value
    assert "[user 1]" in html and "[ip 1]" in html and "[oid 1]" in html and "[name 1]" in html
    assert "personal data masked" in html
    assert TITLE in html and "0b1c2d3e-aaaa-bbbb-cccc-0123456789ab" in html  # evidence ids stay


# ---- (e) real headless Chromium -------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} not found (apt-get install chromium): the report's browser test cannot run"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed", pytrace=False)
        pytest.skip("playwright is not installed in this Python environment")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser, path: Path, **kw):
    page = browser.new_page(java_script_enabled=True, **kw)
    seen = {"requests": [], "console": [], "dialogs": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: seen["console"].append(("pageerror", str(e))))

    def dialog(d):
        seen["dialogs"].append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, seen


def test_report_in_headless_chromium(chromium, engine, tmp_path):
    session, hops, findings = reused_code_session(engine)
    out = tmp_path / "report.html"
    write_report(report_of(session, hops, findings), str(out))
    page, seen = _open(chromium, out, viewport={"width": 1360, "height": 1000}, color_scheme="light")
    assert page.locator("h1").inner_text().startswith("Sign-in failed: the authorization code was already redeemed")
    assert page.get_by_role("heading", name=TITLE, exact=True).is_visible()
    box = page.get_by_role("heading", name=TITLE, exact=True).bounding_box()
    assert box and box["y"] < 1000  # on the first screen
    assert page.locator("details.hop").count() == len(hops)
    # an evidence link opens the hop it points at
    last = findings[0].evidence[-1].number
    page.locator(f'#finding-1 a.ev[href="#hop-{last}"]').click()
    assert page.locator(f'details[data-hop="{last}"]').evaluate("d => d.open")
    assert page.locator(f"#hop-{last}").get_by_text("invalid_grant", exact=True).first.is_visible()
    # the API call's token card links to the token's full card in the (closed) token response hop
    api = next(h for h in hops if h.role == "api")
    token_hop = next(h for h in hops if h.role == "token")
    assert not page.locator(f'details[data-hop="{token_hop.number}"]').evaluate("d => d.open")
    page.locator(f'details[data-hop="{api.number}"] > summary').click()
    page.locator(f'#hop-{api.number} a[href^="#tok-"]').first.click()
    assert page.locator(f'details[data-hop="{token_hop.number}"]').evaluate("d => d.open")
    card = page.locator(f'#hop-{token_hop.number} section.token[id^="tok-"]').first
    assert card.is_visible() and "Claims" in card.inner_text()
    page.locator(f'details[data-hop="{api.number}"]').evaluate("d => d.open = false")
    page.locator(f'details[data-hop="{token_hop.number}"]').evaluate("d => d.open = false")
    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(ARTIFACTS / "report-dark.png"))
    assert seen["requests"] == [out.as_uri()], seen["requests"]
    assert [c for c in seen["console"] if c[0] in ("error", "pageerror")] == [], seen["console"]
    assert not seen["dialogs"]
    page.close()


def test_hostile_report_runs_nothing_in_chromium(chromium, engine, tmp_path):
    session, hops, findings = hostile_session(engine)
    out = tmp_path / "hostile.html"
    # written directly: the hostile `code_fp` is no fingerprint, and the leak check rightly refuses it
    out.write_text(report_of(session, hops, findings), encoding="utf-8")
    page, seen = _open(chromium, out)
    for d in page.locator("details").all():  # open everything: nothing inside may come alive
        d.evaluate("d => d.open = true")
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("document.images.length") == 0
    assert page.get_by_text("{{ 7*7 }}").first.is_visible()
    assert "<script>window.__pwned=1;alert(1)</script>" in page.locator("h1").inner_text() or \
        "<script>window.__pwned=1;alert(1)</script>" in page.locator("body").inner_text()
    assert seen["requests"] == [out.as_uri()], seen["requests"]
    assert [c for c in seen["console"] if c[0] in ("error", "pageerror")] == [], seen["console"]
    assert not seen["dialogs"]
    page.close()


def test_login_steps_carry_the_flow_tag_of_their_sign_in(engine):
    """The provider's pages between authorize and callback (login, credential POST) belong to that sign-in."""
    session, hops = _store(engine, signin_flows(time.time() - 600))
    html = report_of(session, hops)
    for h in hops:
        if h.role in ("authorize", "login", "callback", "token"):
            block = html[html.index(f'data-hop="{h.number}"'):]
            assert '<span class="ftag f0">F1</span>' in block[:block.index("</summary>")], h.role


def test_a_huge_session_folds_runs_of_alike_calls_but_never_evidence_or_errors(engine):
    """Beyond the full-timeline limit, repeated API calls fold into one row; the findings' hops stay."""
    from authtrace.reports.html import shown

    t0 = time.time() - 3000
    secrets: dict = {}
    flows = signin_flows(t0, secrets=secrets)
    for k in range(40):
        flows.append(flow("GET", f"https://{API}/api/items", t=t0 + 10 + k, browser=False,
                          status=500 if k == 20 else 200, headers={"authorization": f"Bearer {secrets['access_token']}"},
                          resp_headers={"content-type": "application/json"}, resp_body="{}"))
    session, hops = _store(engine, flows)
    a = assemble(session, hops, [])
    assert shown(a, limit=1000) == hops  # small sessions: every hop
    rows = shown(a, limit=10)
    folded = [r for r in rows if not isinstance(r, type(hops[0]))]
    assert len(folded) == 2 and sum(len(c.hops) for c in folded) == 40 - 2 * 2 - 1  # two runs around the error
    drawn = [r for r in rows if isinstance(r, type(hops[0]))]
    assert any(h.status == 500 for h in drawn) and len(drawn) + 35 == len(hops)
    from authtrace.reports import html as page

    page_limit = page.FULL_TIMELINE
    try:
        page.FULL_TIMELINE = 10
        text = page.render_html(a)
    finally:
        page.FULL_TIMELINE = page_limit
    assert text.count('<p class="collapsed">') == 2 and "more calls like the one above" in text
    assert text.count("<details class=\"hop") == len(hops) - 35 and find_leaks(text) == []


def test_a_huge_session_folds_each_clean_sign_in_into_one_row(engine):
    from authtrace.reports.html import Collapsed, shown

    t0 = time.time() - 3000
    clean = signin_flows(t0, code="code-clean", state="state-clean-0123", nonce="n-clean")
    broken = signin_flows(t0 + 100, code="code-broken", state="state-broken-012", nonce="n-broken")
    broken[-1].response.status_code = 500
    session, hops = _store(engine, clean + broken)
    a = assemble(session, hops, [])
    rows = shown(a, limit=5)
    folded = [r for r in rows if isinstance(r, Collapsed)]
    assert len(folded) == 1 and folded[0].flow and {h.state for h in folded[0].hops} >= {"state-clean-0123"}
    early = [h for h in rows if not isinstance(h, Collapsed) and h.started < t0 + 100]
    assert all(a.flows.get(h.number) is None for h in early)  # only hops of no sign-in (the JWKS) stay drawn
    assert len([h for h in rows if not isinstance(h, Collapsed)]) == len(hops) - len(folded[0].hops)


def test_a_callback_whose_state_was_altered_stays_in_its_sign_in(engine):
    """The page that issued the code joins the authorize request that led to it, so the callback (and its
    redemption) carry the same flow tag although their state matches nothing."""
    flows = signin_flows(time.time() - 600)
    flows[3].request.content = flows[3].request.content.replace(b"state=", b"state=tampered")
    session, hops = _store(engine, flows)
    a = assemble(session, hops, [])
    tags = {h.role: a.flows.get(h.number) for h in hops if h.role in ("authorize", "callback", "token")}
    assert tags["authorize"] == tags["callback"] == tags["token"] == 1


@pytest.mark.parametrize("body,kept", [
    ('{"error": {"code": "PermissionDenied", "message": "no access"}}', True),
    ('{"code": "invalid_request"}', True),
    ('{"code": "Bad Request"}', True),
    ('{"code": "0.AXoA-real-authorization-code-9f8e7d"}', False),
    ('{"code": "SplxlOBeZQQYbYS6WxSbIA"}', False),  # RFC 6749's example code: letters, but no CamelCase words
])
def test_an_error_code_in_words_stays_readable_and_a_real_code_never_does(body, kept):
    from authtrace.addons.secrets import Fingerprinter

    text = Fingerprinter(b"k" * 32).text(body)
    value = json.loads(body)
    value = value["error"]["code"] if "error" in value else value["code"]
    assert (value in text) == kept
    assert find_leaks(f"<pre>{body}</pre>") == ([] if kept else find_leaks(f"<pre>{body}</pre>"))
    if not kept:
        assert find_leaks(f"<pre>{body}</pre>")  # the leak check would refuse it raw


def test_a_token_answer_with_null_tokens_is_no_leak(tmp_path, engine):
    """`{"access_token": null}` (found by the hostile-JSON property): nothing secret, the report is written."""
    t = time.time() - 60
    answer = flow("POST", f"https://{IDP}/{TENANT}/oauth2/v2.0/token", t=t, browser=False,
                  headers={"content-type": "application/x-www-form-urlencoded"},
                  body="grant_type=client_credentials&client_id=c", resp_headers={"content-type": "application/json"},
                  resp_body='{"access_token": null, "refresh_token": false, "token_type": "Bearer"}')
    session, hops = _store(engine, [answer])
    out = tmp_path / "r.html"
    write_report(report_of(session, hops), str(out))
    assert out.exists() and find_leaks('<tr><th>access_token</th><td>eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.c2lnbmF0dXJl</td>')


def test_a_null_where_a_secret_was_expected_is_no_leak():
    """A token answer `{"access_token": null}` (hypothesis found it): its table row reads `null`, which holds
    no secret; the report must be written, and a real value still is one."""
    assert find_leaks("<tr><th>access_token</th><td>null</td></tr>") == []
    assert find_leaks('{"refresh_token": "false"}') == []
    assert find_leaks("<tr><th>access_token</th><td>nullish-value</td></tr>") == [
        "a raw `access_token` value in the report header"]
