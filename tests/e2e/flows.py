"""Browser journeys for the end-to-end rig, driven with Playwright (sync API).

``sign_in`` performs one sign-in against the test IdP's built-in login and
consent pages. ``replay_callback`` is the code-reuse recipe: put back the app's
cookies from just before the callback and open the same callback URL again, so
the app redeems the same authorization code a second time (as a double submit
or a replayed redirect would).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:  # keep collection working where playwright is missing
    from playwright.sync_api import BrowserContext, Page


@dataclass
class SignIn:
    page: Page
    app_url: str
    callback_url: str  # the exact URL the IdP redirected the browser to (code, state, iss)
    callback_status: int  # HTTP status of the app's callback page
    result: dict[str, Any]  # the app's JSON outcome (see rp/app.py)
    title: str  # the heading of the app's page after the callback
    cookies_before_callback: list[dict] = field(default_factory=list)  # app cookies, pre-callback
    sent_callback_url: str = ""  # what the browser actually requested (differs when rewritten)

    @property
    def code(self) -> str | None:
        return parse_qs(urlsplit(self.callback_url).query).get("code", [None])[0]

    @property
    def state(self) -> str | None:
        return parse_qs(urlsplit(self.callback_url).query).get("state", [None])[0]


def app_result(page: Page) -> dict[str, Any]:
    """The JSON the test app prints in <pre id="result">."""
    return json.loads(page.text_content("#result") or "{}")


def app_cookies(context: BrowserContext, app_url: str) -> list[dict]:
    return context.cookies([app_url])


def restore_app_cookies(context: BrowserContext, app_url: str, cookies: list[dict]) -> None:
    """Replace the app's cookies in the browser with a saved set."""
    context.clear_cookies(domain=urlsplit(app_url).hostname)
    if cookies:
        context.add_cookies(cookies)


def sign_in(
    context: BrowserContext,
    app_url: str,
    *,
    login: str = "alice",
    password: str = "correct horse",
    login_query: str = "",
    rewrite_callback: Callable[[str], str] | None = None,
) -> SignIn:
    """One sign-in: app /login -> IdP login -> consent -> app /callback.

    Expects a browser context without an IdP session (a fresh profile): the
    IdP skips its login and consent pages for a known user.

    The app's cookies are copied just before the consent click, the last step
    before the IdP redirects to the callback (only /login sets them, so this is
    what the callback carries; checked against the callback's Cookie header).
    ``page.route`` cannot hold the callback: Playwright does not route redirect hops.

    ``rewrite_callback(url) -> url`` makes the browser itself change the callback URL
    before the request leaves it (Chrome DevTools Protocol ``Fetch``, which does pause
    redirect hops): the proxy, the app and the IdP only ever see the rewritten URL.
    """
    page = context.new_page()
    callback_prefix = f"{app_url}/callback"
    callbacks: list = []
    rewritten: list[tuple[str, str]] = []
    if rewrite_callback is not None:
        rewritten = rewrite_navigations(context, page, callback_prefix, rewrite_callback)

    def is_callback(request) -> bool:
        return request.url.startswith(callback_prefix) and request.is_navigation_request()

    page.on("request", lambda request: callbacks.append(request) if is_callback(request) else None)
    page.goto(f"{app_url}/login{login_query}")  # -> IdP /auth -> /interaction/<uid> (login form)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")  # "Sign-in"
    consent = page.locator("button:has-text('Continue')")
    consent.wait_for()
    cookies_before = app_cookies(context, app_url)
    with page.expect_response(lambda r: is_callback(r.request)) as callback:
        consent.click()
    page.wait_for_load_state("load")
    if not rewritten:  # (a request continued through CDP shows Playwright no Cookie header)
        sent = callbacks[0].header_value("cookie") or ""
        missing = [c["name"] for c in cookies_before if f"{c['name']}={c['value']}" not in sent]
        if missing:
            raise AssertionError(f"app cookies {missing} changed between the snapshot and the callback")
    issued = rewritten[0][0] if rewritten else callbacks[0].url
    return SignIn(
        page=page,
        app_url=app_url,
        callback_url=issued,
        callback_status=callback.value.status,
        result=app_result(page),
        title=page.text_content("#title") or "",
        cookies_before_callback=cookies_before,
        sent_callback_url=rewritten[0][1] if rewritten else issued,
    )


def rewrite_navigations(
    context: BrowserContext, page: Page, url_prefix: str, rewrite: Callable[[str], str]
) -> list[tuple[str, str]]:
    """Rewrite, inside the browser, every request of page whose URL starts with url_prefix.

    Uses a CDP session (``Fetch.enable`` at the request stage, ``Fetch.continueRequest`` with a new
    ``url``): unlike ``page.route`` it also pauses requests that follow a redirect. Returns the
    list that collects ``(original URL, rewritten URL)`` pairs as they happen.
    """
    cdp = context.new_cdp_session(page)
    seen: list[tuple[str, str]] = []

    def paused(event: dict) -> None:
        url = event["request"]["url"]
        new = rewrite(url)
        seen.append((url, new))
        cdp.send("Fetch.continueRequest", {"requestId": event["requestId"], "url": new})

    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": url_prefix + "*", "requestStage": "Request"}]})
    return seen


def with_query(url: str, **changes: str) -> str:
    """url with the given query parameters replaced (order and the other parameters kept)."""
    parts = urlsplit(url)
    query = [(k, changes.get(k, v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class Replay:
    status: int  # HTTP status of the app's page for the replayed callback
    result: dict[str, Any]
    cookies_after_first: list[dict]  # the app session of the first, successful callback


def replay_callback(context: BrowserContext, first: SignIn) -> Replay:
    """Deliver the same callback again with the app's pre-callback cookies (code reuse).

    A plain second visit would fail in the app itself (Authlib dropped the state
    after the first use) and never reach the IdP.

    Afterwards the browser holds the cookies of the replay; use
    ``restore_app_cookies(context, first.app_url, replay.cookies_after_first)``
    to act as the first session again.
    """
    after_first = app_cookies(context, first.app_url)
    restore_app_cookies(context, first.app_url, first.cookies_before_callback)
    response = first.page.goto(first.callback_url)
    return Replay(status=response.status, result=app_result(first.page), cookies_after_first=after_first)


def app_call(page: Page, app_url: str, url: str, token: str = "api") -> dict[str, Any]:
    """Ask the app to send its stored access token (api JWT or userinfo token) to url."""
    page.goto(f"{app_url}/call?{urlencode({'url': url, 'token': token})}")
    return app_result(page)
