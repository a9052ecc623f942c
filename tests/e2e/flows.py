"""Browser journeys for the end-to-end rig, driven with Playwright (sync API).

``sign_in`` performs one sign-in against the test IdP's built-in login and
consent pages. ``replay_callback`` is the code-reuse recipe: put back the app's
cookies from just before the callback and open the same callback URL again, so
the app redeems the same authorization code a second time (as a double submit
or a replayed redirect would).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

if TYPE_CHECKING:  # keep collection working where playwright is missing
    from playwright.sync_api import BrowserContext, Page


@dataclass
class SignIn:
    page: "Page"
    app_url: str
    callback_url: str  # the exact URL the IdP redirected the browser to (code, state, iss)
    callback_status: int  # HTTP status of the app's callback page
    result: dict[str, Any]  # the app's JSON outcome (see rp/app.py)
    cookies_before_callback: list[dict] = field(default_factory=list)  # app cookies, pre-callback

    @property
    def code(self) -> str | None:
        return parse_qs(urlsplit(self.callback_url).query).get("code", [None])[0]

    @property
    def state(self) -> str | None:
        return parse_qs(urlsplit(self.callback_url).query).get("state", [None])[0]


def app_result(page: "Page") -> dict[str, Any]:
    """The JSON the test app prints in <pre id="result">."""
    return json.loads(page.text_content("#result") or "{}")


def app_cookies(context: "BrowserContext", app_url: str) -> list[dict]:
    return context.cookies([app_url])


def restore_app_cookies(context: "BrowserContext", app_url: str, cookies: list[dict]) -> None:
    """Replace the app's cookies in the browser with a saved set."""
    context.clear_cookies(domain=urlsplit(app_url).hostname)
    if cookies:
        context.add_cookies(cookies)


def sign_in(
    context: "BrowserContext",
    app_url: str,
    *,
    login: str = "alice",
    password: str = "correct horse",
    login_query: str = "",
) -> SignIn:
    """One sign-in: app /login -> IdP login -> consent -> app /callback.

    The callback navigation is held (``page.route``) just long enough to copy
    the app's cookies as they were before the callback ran.
    """
    page = context.new_page()
    callback_prefix = f"{app_url}/callback"
    captured: dict[str, Any] = {}

    def hold_callback(route) -> None:
        if "url" not in captured and route.request.is_navigation_request():
            captured["url"] = route.request.url
            captured["cookies"] = app_cookies(context, app_url)
        route.continue_()

    page.route(f"{callback_prefix}*", hold_callback)
    page.goto(f"{app_url}/login{login_query}")  # -> IdP /auth -> /interaction/<uid> (login form)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")  # "Sign-in"
    with page.expect_response(
        lambda r: r.url.startswith(callback_prefix) and r.request.is_navigation_request()
    ) as callback:
        page.click("button:has-text('Continue')")  # consent
    page.wait_for_load_state("load")
    page.unroute(f"{callback_prefix}*", hold_callback)
    return SignIn(
        page=page,
        app_url=app_url,
        callback_url=captured.get("url", callback.value.url),
        callback_status=callback.value.status,
        result=app_result(page),
        cookies_before_callback=captured.get("cookies", []),
    )


@dataclass
class Replay:
    status: int  # HTTP status of the app's page for the replayed callback
    result: dict[str, Any]
    cookies_after_first: list[dict]  # the app session of the first, successful callback


def replay_callback(context: "BrowserContext", first: SignIn) -> Replay:
    """Deliver the same callback again with the app's pre-callback cookies (code reuse).

    Afterwards the browser holds the cookies of the replay; use
    ``restore_app_cookies(context, first.app_url, replay.cookies_after_first)``
    to act as the first session again.
    """
    after_first = app_cookies(context, first.app_url)
    restore_app_cookies(context, first.app_url, first.cookies_before_callback)
    response = first.page.goto(first.callback_url)
    return Replay(status=response.status, result=app_result(first.page), cookies_after_first=after_first)


def app_call(page: "Page", app_url: str, url: str, token: str = "api") -> dict[str, Any]:
    """Ask the app to send its stored access token (api JWT or userinfo token) to url."""
    page.goto(f"{app_url}/call?{urlencode({'url': url, 'token': token})}")
    return app_result(page)
