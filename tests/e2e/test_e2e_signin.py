"""Real sign-ins by headless Chromium through the recording proxy.

Pieces: oidc-provider (Node) as idp.test, a Flask + Authlib app as app.test
whose back channel also goes through the proxy, a protected API as api.test /
other.test. See conftest.py for the rig and flows.py for the browser journeys.

Tests named ``*_recorded`` check what authtrace stored; they run only when the
proxy is ``authtrace record`` (rig.PROXY_KIND / env AUTHTRACE_E2E_PROXY).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from . import flows, rig
from .conftest import Stack, launch_browser

# Roles a clean sign-in must leave in the store (DESIGN.md §4).
CLEAN_SIGNIN_ROLES = {"authorize", "login", "callback", "token", "jwks", "userinfo"}


def require_recording(stack: Stack) -> None:
    if not stack.records_hops:
        pytest.skip(f"proxy is {stack.proxy_kind!r}, not 'authtrace record': nothing is stored")


def by_role(rows: list[dict], role: str) -> list[dict]:
    return [r for r in rows if r["role"] == role]


def store_bytes(db) -> bytes:
    """The database file plus its WAL/journal, for 'no raw secret stored' checks."""
    data = b""
    for suffix in ("", "-wal", "-journal"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


# ------------------------------------------------------------- a: clean sign-in


@dataclass
class CleanRun:
    signin: flows.SignIn
    home: dict
    hop_mark: int  # authtrace hop rowid before the sign-in


@pytest.fixture(scope="module")
def clean_signin(stack, playwright_driver, tmp_path_factory):
    mark = rig.hop_mark(stack.db)
    with launch_browser(playwright_driver, stack, tmp_path_factory.mktemp("profile-clean")) as context:
        signin = flows.sign_in(context, stack.app_url)
        page = context.new_page()
        page.goto(stack.app_url + "/")
        home = flows.app_result(page)
        yield CleanRun(signin=signin, home=home, hop_mark=mark)


def test_clean_signin_reaches_app(clean_signin):
    s = clean_signin.signin
    assert s.callback_status == 200, s.result
    assert s.page.text_content("#title") == "Signed in as alice"
    assert s.result["signed_in"] is True, s.result
    # The browser carried a code and a state back; the app checked state, nonce and PKCE.
    assert s.code and s.state
    assert s.callback_url.startswith(f"{s.app_url}/callback?")
    assert s.cookies_before_callback, "the app's pre-callback session cookie was not captured"
    # The app's back channel: code redemption, userinfo, refresh for the API token, the API.
    assert s.result["userinfo"]["sub"] == "alice"
    assert s.result["userinfo"]["email"] == "alice@example.test"
    assert s.result["id_token_claims"]["sub"] == "alice"
    calls = [(c["method"], c["url"].rsplit("/", 1)[-1], c["status"]) for c in s.result["backchannel"]]
    assert calls == [("POST", "token", 200), ("GET", "me", 200), ("POST", "token", 200), ("GET", "data", 200)]
    assert s.result["api"]["status"] == 200
    # The session persists: the home page knows the user.
    assert clean_signin.home == {"signed_in": True, "userinfo": s.result["userinfo"]}


def test_clean_signin_recorded(stack, clean_signin):
    require_recording(stack)
    s = clean_signin.signin
    rows = rig.wait_for_hops(
        stack.db, clean_signin.hop_mark, lambda rows: CLEAN_SIGNIN_ROLES <= {r["role"] for r in rows}
    )
    roles = {r["role"] for r in rows}
    assert CLEAN_SIGNIN_ROLES <= roles, f"missing roles {CLEAN_SIGNIN_ROLES - roles}; got {sorted(roles)}"
    assert not [r for r in rows if r["is_error"]], "a clean sign-in must have no error hop"

    # Hosts are the names the user sees, not the 127.0.0.1 the test routing connects to.
    (authorize,) = by_role(rows, "authorize")
    (callback,) = by_role(rows, "callback")
    assert (authorize["method"], authorize["host"], authorize["path"]) == ("GET", "idp.test", "/auth")
    assert (callback["method"], callback["host"], callback["path"]) == ("GET", "app.test", "/callback")
    assert callback["status"] == 200
    assert authorize["state"] and authorize["state"] == callback["state"]

    # The code is fingerprinted, and the same fingerprint links callback and redemption.
    assert callback["code_fp"]
    redemptions = [t for t in by_role(rows, "token") if t["code_fp"]]
    assert [(t["method"], t["host"], t["status"], t["code_fp"]) for t in redemptions] == [
        ("POST", "idp.test", 200, callback["code_fp"])
    ]
    assert all(r["host"] in rig.TEST_HOSTS for r in rows), sorted({r["host"] for r in rows})
    assert all(r["status"] == 200 for r in by_role(rows, "userinfo") + by_role(rows, "jwks"))

    # No raw secret in the store (DESIGN.md §5).
    raw = store_bytes(stack.db)
    assert s.code.encode() not in raw, "raw authorization code stored"
    assert b"correct horse" not in raw, "password stored"


# ----------------------------------------------- wrong audience (rig self-check)


def test_rig_wrong_audience_gets_401(stack, clean_signin):
    """The API token (aud https://api.test) is refused by other.test, naming the audience."""
    mark = rig.hop_mark(stack.db)
    page = clean_signin.signin.page
    ok = flows.app_call(page, stack.app_url, stack.api_url)
    assert ok["status"] == 200, ok
    wrong = flows.app_call(page, stack.app_url, stack.other_api_url)
    assert wrong["status"] == 401, wrong
    assert wrong["www_authenticate"].startswith('Bearer error="invalid_token"'), wrong
    assert "https://api.test" in wrong["www_authenticate"] and "https://other.test" in wrong["www_authenticate"]

    if stack.records_hops:
        rows = rig.wait_for_hops(stack.db, mark, lambda rows: any(r["host"] == "other.test" for r in rows))
        denied = [r for r in by_role(rows, "api") if r["host"] == "other.test"]
        assert [(r["status"], bool(r["is_error"])) for r in denied] == [(401, True)], rows


# ----------------------------------------------- b: code reuse (rig self-check)


def test_rig_code_reuse_replayed_callback(stack, browser):
    """Callback delivered twice (cookie-restore recipe): IdP refuses the 2nd redemption, revokes the grant."""
    mark = rig.hop_mark(stack.db)
    first = flows.sign_in(browser, stack.app_url)
    assert first.callback_status == 200 and first.result["signed_in"], first.result
    before = flows.app_call(first.page, stack.app_url, stack.userinfo_url, token="userinfo")
    assert before["status"] == 200, before  # control: the first token works before the replay

    replay = flows.replay_callback(browser, first)
    assert replay.status == 400, replay.result
    assert replay.result["error"] == "invalid_grant", replay.result
    token_calls = [c for c in replay.result["backchannel"] if c["url"].endswith("/token")]
    assert [c["status"] for c in token_calls] == [400], replay.result  # seen by the RP, from the IdP
    assert '"error":"invalid_grant"' in token_calls[0]["body"].replace(" ", "")
    assert "authorization code already consumed" in stack.procs["idp"].output()

    # The IdP revoked the grant: the first session's access token is now refused.
    flows.restore_app_cookies(browser, stack.app_url, replay.cookies_after_first)
    after = flows.app_call(first.page, stack.app_url, stack.userinfo_url, token="userinfo")
    assert after["status"] == 401, after
    assert 'error="invalid_token"' in after["www_authenticate"], after
    # The API's JWT is checked offline against the JWKS, so revocation does not reach it.
    still = flows.app_call(first.page, stack.app_url, stack.api_url)
    assert still["status"] == 200, still

    if stack.records_hops:
        rows = rig.wait_for_hops(
            stack.db, mark, lambda rows: any(r["role"] == "token" and r["status"] == 400 for r in rows)
        )
        callbacks = by_role(rows, "callback")
        assert len(callbacks) == 2 and callbacks[0]["code_fp"] == callbacks[1]["code_fp"], callbacks
        redemptions = [r for r in by_role(rows, "token") if r["code_fp"] == callbacks[0]["code_fp"]]
        assert [(r["status"], bool(r["is_error"])) for r in redemptions] == [(200, False), (400, True)], rows
