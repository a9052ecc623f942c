"""`authtrace diff` on Entra-shaped pairs (issue 12): the difference that explains BAD's finding
comes first and says so; two working sign-ins differ only as expected; extra steps stay unpaired;
a difference read from no evidence hop explains nothing. The real e2e pairs are in
tests/e2e/test_e2e_diff.py, the page and the command in test_diff_output.py."""
from __future__ import annotations

import json
import time

from authtrace.reports.diff import compare
from authtrace.reports.diff_align import align, align_steps, norm_path
from authtrace.reports.diff_model import Group, Rank
from authtrace.store.records import Hop, Role

from builders import flow
from diffkit import ARM, WEBVIEW_UA, analysed, device_signin, diff_of, signin, write


def subjects(c, rank=None):
    return [d.subject for d in c.differences if rank is None or d.rank == rank]


def first(c):
    assert c.differences, "no relevant difference"
    return c.differences[0]


# ---- alignment -----------------------------------------------------------------------------------

def test_norm_path_hides_per_request_ids_only():
    assert norm_path("/interaction/_DB1OT_BrsDlnpWk-Dq88eQ8kSq4--oXbTWaa4ly9CG") == "/interaction/*"
    assert norm_path("/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token") == "/*/oauth2/v2.0/token"
    assert norm_path("/api/projects/proj1/threads/12345") == "/api/projects/proj1/threads/*"
    assert norm_path("/.well-known/openid-configuration") == "/.well-known/openid-configuration"
    assert norm_path("/contoso.onmicrosoft.com/oauth2/authorize") == "/contoso.onmicrosoft.com/oauth2/authorize"


def test_align_keeps_order_and_leaves_the_extras_alone():
    same = lambda a, b: 1.0 if a == b else 0.0
    assert align("abc", "axbyc", same) == [("a", "a"), (None, "x"), ("b", "b"), (None, "y"), ("c", "c")]
    assert align("abc", "cab", same) == [(None, "c"), ("a", "a"), ("b", "b"), ("c", None)]  # no crossing pairs
    # on a tie the earlier ones pair: one GOOD call against three BAD calls pairs with the first
    assert align("a", "aaa", same) == [("a", "a"), (None, "a"), (None, "a")]
    assert align("", "ab", same) == [(None, "a"), (None, "b")]


def _hop(n: int, role: Role, status: int, t: float, host: str = "app.test", path: str = "/callback") -> Hop:
    return Hop(started=t, role=role, method="GET", url=f"https://{host}{path}", host=host, path=path,
               status=status, is_error=status >= 400, number=n)


def test_a_retry_pairs_with_the_step_that_ended_alike():
    good = [_hop(1, Role.AUTHORIZE, 302, 0, "idp.test", "/authorize"), _hop(2, Role.CALLBACK, 302, 1)]
    bad = [_hop(1, Role.AUTHORIZE, 302, 0, "idp.test", "/authorize"), _hop(2, Role.CALLBACK, 500, 1),
           _hop(3, Role.CALLBACK, 302, 2)]
    steps = align_steps(good, bad)
    assert [(s.step, s.good and s.good.number, s.bad and s.bad.number) for s in steps] == [
        ("authorize", 1, 1), ("callback", None, 2), ("callback", 2, 3)]


# ---- Entra-shaped pairs ------------------------------------------------------------------------------

def test_foundry_project_endpoint_with_an_arm_token(tmp_path, engine):
    """GOOD asks for https://ai.azure.com/.default; BAD for ARM's .default, gets an ARM token and the
    Foundry project endpoint refuses it."""
    c = diff_of(engine, tmp_path, signin(1), signin(2, scope="openid profile offline_access "
                                                           "https://management.azure.com/.default",
                                                     aud=ARM, api_status=401))
    assert [f.kind for f in c.bad.findings] == ["wrong_audience"] and not c.good.findings
    top = first(c)
    assert top.subject == "authorize · scope" and top.rank == Rank.EXPLAINS
    assert "https://ai.azure.com/.default" in top.good and "https://management.azure.com/.default" in top.bad
    assert [f.kind for f in top.explains] == ["wrong_audience"]
    assert "Azure Resource Manager" in top.note and "Azure AI Foundry" in top.note
    aud = next(d for d in c.differences if d.subject == "access_token · aud")
    assert aud.explains and aud.good == "https://ai.azure.com" and aud.bad == ARM
    assert [h.role for h in aud.bad_hops] == ["token", "api"]  # issued there, refused here: one difference
    status = next(d for d in c.differences if d.field == "status")
    assert (status.good, status.bad) == ("200", "401") and status.shows and not status.explains
    # causes before the failure they cause
    ranks = [d for d in c.differences if d.rank == Rank.EXPLAINS]
    assert ranks.index(aud) < ranks.index(status)
    assert not any(d.group == Group.EXPECTED for d in c.differences)


def test_v1_resource_against_v2_scope(tmp_path, engine):
    bad = signin(2, v1=True, scope="openid", resource="https://management.core.windows.net/",
                 aud="https://management.core.windows.net/", ver="1.0", api_status=401)
    c = diff_of(engine, tmp_path, signin(1), bad)
    assert [f.kind for f in c.bad.findings] == ["wrong_audience"]
    explaining = [d.subject for d in c.differences if d.explains]
    assert explaining[:4] == ["authorize · scope", "authorize · resource", "token (authorization_code) · resource",
                              "access_token · aud"]
    version = next(d for d in c.differences if d.subject == "authorize · endpoint version")
    assert (version.good, version.bad) == ("v2.0", "v1.0")
    assert version.rank == Rank.CONFIGURATION and not version.explains  # the endpoint is no cause by itself
    ver = next(d for d in c.differences if d.subject == "access_token · ver")
    assert (ver.good, ver.bad, ver.rank) == ("2.0", "1.0", Rank.CONFIGURATION)
    assert {d.subject for d in c.differences if d.good is None or d.bad is None} >= {
        "access_token · azp", "access_token · appid"}


def test_token_request_with_another_redirect_uri(tmp_path, engine):
    c = diff_of(engine, tmp_path, signin(1), signin(2, token_redirect_uri="https://app.contoso.test/other-cb"))
    assert [f.kind for f in c.bad.findings] == ["redirect_uri_mismatch"]
    assert subjects(c) == ["token (authorization_code) · redirect_uri equals the authorize request's",
                           "token (authorization_code) · redirect_uri"]
    bound, ru = c.differences
    assert (bound.good, bound.bad) == ("yes", "no") and bound.explains
    assert ru.bad == "https://app.contoso.test/other-cb" and [f.kind for f in ru.explains] == ["redirect_uri_mismatch"]


def test_code_redeemed_too_late(tmp_path, engine):
    """BAD's app redeems the code 12 minutes after the callback: AADSTS70008."""
    bad = signin(2)[:5]
    token = bad[4]
    for r in (token.request, token.response):
        r.timestamp_start += 720
        r.timestamp_end += 720
    token.response.status_code = 400
    token.response.set_text(json.dumps({"error": "invalid_grant", "error_codes": [70008],
                                        "error_description": "AADSTS70008: The provided authorization code or "
                                                             "refresh token has expired due to inactivity."}))
    c = diff_of(engine, tmp_path, signin(1), bad)
    assert "idp_error" in [f.kind for f in c.bad.findings]
    top = first(c)
    assert top.subject == "token (authorization_code) · time since callback" and top.group == Group.TIMING
    assert top.bad == "12 min" and [f.kind for f in top.explains] == ["idp_error"]
    err = next(d for d in c.differences if d.field == "error")
    assert err.bad == "invalid_grant (AADSTS70008)" and "expired" in err.note.lower()
    assert err.shows and not err.explains


def test_embedded_webview_is_a_client_difference(tmp_path, engine):
    c = diff_of(engine, tmp_path, signin(1), signin(2, user_agent=WEBVIEW_UA))
    assert not c.bad.findings
    (ua,) = c.differences
    assert ua.rank == Rank.CLIENT and not ua.explains
    assert ua.good.startswith("Chrome 156 · ") and ua.bad.startswith("Chrome 156, embedded webview (Android WebView)")
    assert [h.role for h in ua.bad_hops] == ["authorize", "login", "callback"]  # one difference, every browser step


def test_a_difference_at_no_evidence_hop_explains_nothing(tmp_path, engine):
    """BAD is in a webview AND asks for the wrong audience: only the audience explains the finding."""
    bad = signin(2, user_agent=WEBVIEW_UA, scope="openid https://management.azure.com/.default", aud=ARM,
                 api_status=401)
    c = diff_of(engine, tmp_path, signin(1), bad)
    ua = next(d for d in c.differences if d.field == "client")
    assert ua.rank == Rank.CLIENT and not ua.explains and not ua.shows
    assert first(c).subject == "authorize · scope"


def test_more_callbacks_on_the_good_side_explain_nothing(tmp_path, engine):
    """GOOD's callback was requested twice (and recovered); BAD's code was refused as already redeemed
    on its first use (reused_code). The callback count touches BAD's evidence, but in the other
    direction: it is no cause."""
    good = signin(1)
    cb = good[3]
    again = flow("POST", cb.request.url, t=cb.request.timestamp_start + 1, body=cb.request.get_text(),
                 headers={"content-type": "application/x-www-form-urlencoded", "origin": "https://login.microsoftonline.com"},
                 status=302, resp_headers={"location": "/"})
    good.insert(4, again)
    bad = signin(2)[:5]
    bad[4].response.status_code = 400
    bad[4].response.set_text(json.dumps({"error": "invalid_grant", "error_codes": [54005],
                                         "error_description": "AADSTS54005: OAuth2 Authorization code was already "
                                                              "redeemed, please retry with a new valid code."}))
    c = diff_of(engine, tmp_path, good, bad)
    assert "reused_code" in [f.kind for f in c.bad.findings]
    count = next(d for d in c.differences if d.field == "count:callback")
    assert (count.good, count.bad) == ("2", "1") and not count.explains


def test_two_working_signins_differ_only_as_expected(tmp_path, engine):
    c = diff_of(engine, tmp_path, signin(1), signin(2, t0=time.time() - 100))
    assert not c.relevant and c.differences == []
    assert {d.subject for d in c.expected} >= {"state", "nonce", "authorization code", "PKCE code_challenge",
                                               "token fingerprints", "request times", "token times (iat, nbf, exp)"}
    assert all(d.group == Group.EXPECTED for d in c.expected)


def test_the_same_capture_as_har_and_mitm_has_no_difference(tmp_path, engine):
    flows = signin(1)
    c = diff_of(engine, tmp_path, flows, flows, suffixes=(".har", ".mitm"))
    assert c.differences == [] and c.expected == []
    assert all(s.good is not None and s.bad is not None for fp in c.flows for s in fp.steps)


def test_extra_pages_calls_and_renewals_stay_unpaired(tmp_path, engine):
    c = diff_of(engine, tmp_path, signin(1), signin(2, mfa=True, more_api_calls=2, renewal=True))
    assert not c.bad.findings
    assert [(d.subject.split(" ", 2)[:2], d.good, d.rank) for d in c.differences] == [
        (["login", "POST"], None, Rank.OUTCOME), (["api", "POST"], None, Rank.OUTCOME),
        (["token", "(refresh_token)"], None, Rank.OUTCOME)]
    assert [h.number for h in c.differences[1].bad_hops] == [8, 9]
    paired = [s for fp in c.flows for s in fp.steps if s.good is not None and s.bad is not None]
    assert [s.step.split(" ")[0] for s in paired] == ["authorize", "login", "callback", "token", "jwks", "api"]


def test_a_fact_that_could_cause_the_finding_but_was_not_read_at_its_evidence_explains_nothing(tmp_path, engine):
    """BAD signs in through another registered redirect URI (authorize and token agree) and later a
    silent renewal fails. The redirect_uri could cause an idp_error, but the failing renewal did not
    carry it: configuration, not the explanation. The renewal only BAD made shows the failure."""
    bad = signin(2, renewal=True)
    for f in bad[:5]:
        if f.request.method == "GET" and "redirect_uri" in f.request.query:
            f.request.query["redirect_uri"] = "https://app.contoso.test/signin-oidc-2"
    bad[4].request.urlencoded_form["redirect_uri"] = "https://app.contoso.test/signin-oidc-2"
    renewal = bad[-1]
    renewal.response.status_code = 400
    renewal.response.set_text(json.dumps({"error": "invalid_grant", "error_codes": [700082],
                                          "error_description": "AADSTS700082: The refresh token has expired due to "
                                                               "inactivity."}))
    c = diff_of(engine, tmp_path, signin(1), bad)
    assert [f.kind for f in c.bad.findings] == ["idp_error"]
    ru = [d for d in c.differences if d.field == "redirect_uri"]
    assert ru and all(d.rank == Rank.CONFIGURATION and not d.explains for d in ru)
    assert not any(d.explains for d in c.differences)
    (shown,) = [d for d in c.differences if d.shows]
    assert shown.subject == "token (refresh_token) requests" and (shown.good, shown.bad) == (None, "1")


def test_device_flows_that_polled_more_often_differ_only_as_expected(tmp_path, engine):
    c = diff_of(engine, tmp_path, device_signin(1, polls=2), device_signin(2, polls=6))
    assert not c.bad.findings and c.differences == []
    polls = next(d for d in c.expected if d.subject.startswith("device-flow polls"))
    assert len(polls.bad_hops) == 4 and not polls.good_hops
    paired = [s for fp in c.flows for s in fp.steps if s.good is not None and s.bad is not None]
    assert [(s.good.status, s.bad.status) for s in paired if s.step.startswith("token")] == [(400, 400), (400, 400),
                                                                                          (200, 200)]


def test_a_browser_only_capture_hides_the_back_channel_it_cannot_see(tmp_path, engine):
    """BAD is what DevTools exports: no token, JWKS or API request of the app. Their absence is no
    difference; the capture note says why."""
    bad = [f for f in signin(2) if "sec-fetch-mode" in f.request.headers]
    c = diff_of(engine, tmp_path, signin(1), bad)
    assert c.differences == [] and c.bad.notes
    unseen = next(d for d in c.expected if d.subject == "back-channel steps the other capture cannot show")
    assert [h.role for h in unseen.good_hops] == ["token", "jwks", "api"] and not unseen.bad_hops


def test_regional_redirect_handler_and_api_host_against_the_global_ones(tmp_path, engine):
    """BAD's redirect goes to a regional handler and its API call to a regional host: the steps still
    pair (by role; the API call by its path), and the hosts are the differences."""
    regional = "https://eastus2.api.azureml.ms/agent-oauth/v1.0/redirect"
    good = signin(1)
    for f in good:
        _move(f, "https://app.contoso.test/signin-oidc", "https://api.azureml.ms/agent-oauth/v1.0/redirect")
    bad = signin(2)
    for f in bad:
        _move(f, "https://app.contoso.test/signin-oidc", regional)
        _move(f, "https://contoso-ai.services.ai.azure.com/", "https://contoso-ai-eastus2.services.ai.azure.com/")
    c = diff_of(engine, tmp_path, good, bad)
    assert not c.bad.findings
    got = {d.subject: (d.good, d.bad) for d in c.differences}
    assert got["callback · endpoint"] == ("api.azureml.ms/agent-oauth/v1.0/redirect",
                                          "eastus2.api.azureml.ms/agent-oauth/v1.0/redirect")
    assert got["authorize · redirect_uri"][1] == regional and got["token (authorization_code) · redirect_uri"][1] == regional
    api = next(k for k in got if k.startswith("api ") and k.endswith("· endpoint"))
    assert got[api][1].startswith("contoso-ai-eastus2.services.ai.azure.com/api/projects/proj1/")
    assert all(d.rank == Rank.CONFIGURATION for d in c.differences)
    assert all(s.good is not None and s.bad is not None for fp in c.flows for s in fp.steps)


def _move(f, old: str, new: str) -> None:
    """Rewrite a URL prefix wherever the flow carries it: the request URL, its query and form, its body
    and the answer's body and Location."""
    if f.request.url.startswith(old):
        f.request.url = new + f.request.url[len(old):]
    for k, v in list(f.request.query.items()):
        if v.startswith(old):
            f.request.query[k] = new + v[len(old):]
    if f.request.urlencoded_form:
        for k, v in list(f.request.urlencoded_form.items()):
            if v.startswith(old):
                f.request.urlencoded_form[k] = new + v[len(old):]
    if f.response is not None and old in (f.response.get_text() or ""):
        f.response.set_text(f.response.get_text().replace(old, new))


def test_a_callback_with_an_altered_state_stays_in_its_sign_in(tmp_path, engine):
    """BAD's callback carries another state than its authorize request. Where nothing links the two
    halves, the timeline's flow groups split there (oidc-provider's captures do: the authorize and
    login hops are F1, the code's hop and the callback F2); the diff still pairs the callback with
    GOOD's, because a flow that begins with a callback continues the sign-in before it."""
    bad = signin(2)
    bad[3].request.urlencoded_form["state"] = "state-2-altered-by-an-extension"
    g, b = analysed(engine, write(tmp_path / "good.har", signin(1))), analysed(engine, write(tmp_path / "bad.har", bad))
    assert [(h.number, h.role) for h in b.hops][:4] == [(1, "authorize"), (2, "login"), (3, "callback"), (4, "token")]
    b.flows = {1: 1, 2: 1, 3: 2, 4: 2, 6: 2}  # split as oidc-provider's capture splits
    c = compare(g, b)
    assert [f.kind for f in c.bad.findings] == ["state_mismatch"]
    assert len(c.flows) == 1 and all(s.good is not None and s.bad is not None for s in c.flows[0].steps)
    top = first(c)
    assert top.subject == "callback · state matches the authorize request's" and (top.good, top.bad) == ("yes", "no")
    assert [f.kind for f in top.explains] == ["state_mismatch"]
