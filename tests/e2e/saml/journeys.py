"""The five SAML journeys of issue 13, driven in headless Chromium with Playwright (sync API).

Each takes a fresh browser context (no IdP session) and returns what the browser saw, so the
tests can tell the journey did what it says before judging the capture. Raw messages are held
only in memory, never written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from authtrace.addons import saml

if TYPE_CHECKING:  # keep collection working where playwright is missing
    from playwright.sync_api import BrowserContext, Page, Request, Route

USER, PASSWORD = "alice", "alice-pass"  # the IdP's static test user (idp.py)


@dataclass
class Seen:
    """What the browser saw of one sign-in."""

    acs_status: int | None = None  # the SP's answer to the (last) Response post
    acs_text: str = ""
    acs_posts: list[dict[str, str]] = field(default_factory=list)  # form fields of every ACS post (memory only)
    extra: dict[str, Any] = field(default_factory=dict)


def _watch_acs(page: Page, sp_base: str, seen: Seen) -> None:
    def on_request(req: Request) -> None:
        if req.method == "POST" and req.url.startswith(f"{sp_base}/acs/"):
            seen.acs_posts.append(dict(parse_qsl(req.post_data or "")))

    page.on("request", on_request)


def _finish_at_acs(page: Page, sp_base: str, seen: Seen, action: Callable[[], None]) -> None:
    """Run ``action`` and wait for the SP's answer to the Response post it leads to."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.startswith(f"{sp_base}/acs/")) as info:
        action()
    response = info.value
    response.finished()
    seen.acs_status = response.status
    page.wait_for_load_state("domcontentloaded")
    seen.acs_text = page.inner_text("body")


def _login_at_idp(page: Page) -> None:
    page.wait_for_selector("input#username")
    page.fill("input#username", USER)
    page.fill("input#password", PASSWORD)
    page.click("#submit_button")


def sign_in(context: BrowserContext, sp_base: str, entity: str, *, passive: bool = False) -> tuple[Page, Seen]:
    """Start at the SP as ``entity``; log in at the IdP unless passive; stop at the SP's ACS answer."""
    page = context.new_page()
    seen = Seen()
    _watch_acs(page, sp_base, seen)
    url = f"{sp_base}/login/{entity}" + ("?passive=1" if passive else "")
    if passive:  # no IdP session: the IdP answers at once, without a login page

        def start() -> None:
            page.goto(url)

        _finish_at_acs(page, sp_base, seen, start)
    else:
        page.goto(url)
        _finish_at_acs(page, sp_base, seen, lambda: _login_at_idp(page))
    return page, seen


def clean(context: BrowserContext, sp_base: str, idp_metadata_url: str) -> Seen:
    """Download the IdP's metadata (as an admin setting up the SP would), then sign in once."""
    from playwright.sync_api import Error as PlaywrightError

    meta_page = context.new_page()
    # SimpleSAMLphp serves metadata as application/samlmetadata+xml: Chromium downloads it, and
    # Playwright's goto reports that as an error although the request went through the proxy.
    with meta_page.expect_download() as download_info, contextlib.suppress(PlaywrightError):
        meta_page.goto(idp_metadata_url)
    download = download_info.value
    seen_path = download.path()  # waits until the body has arrived
    seen_meta = seen_path.read_bytes() if seen_path else b""
    meta_page.close()
    _, seen = sign_in(context, sp_base, "main")
    seen.extra["metadata_downloaded"] = b"EntityDescriptor" in seen_meta
    return seen


def repost(context: BrowserContext, sp_base: str) -> Seen:
    """Sign in, then post the very same Response form to the ACS again (a re-submitted form:
    Chromium's back button does not re-post it, the IdP's auto-post page leaves history)."""
    page, seen = sign_in(context, sp_base, "main")
    seen.extra["first_status"] = seen.acs_status
    fields = seen.acs_posts[0]
    action = f"{sp_base}/acs/main"

    def submit_again() -> None:
        page.evaluate(
            """([action, fields]) => {
                const form = document.createElement('form');
                form.method = 'POST'; form.action = action;
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement('input');
                    input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
                }
                document.body.appendChild(form); form.submit();
            }""",
            [action, fields],
        )

    _finish_at_acs(page, sp_base, seen, submit_again)
    return seen


def audience_mismatch(context: BrowserContext, sp_base: str) -> Seen:
    """Sign in through the app's old registration: the IdP addresses the assertion to the old
    entity id, and the app's ACS (which belongs to the current one) receives it."""
    _, seen = sign_in(context, sp_base, "old")
    return seen


def expired(context: BrowserContext, sp_base: str) -> Seen:
    """Sign in as the entity the IdP gives a 1-second assertion lifetime, and let the browser's
    post to the ACS leave only after the assertion's NotOnOrAfter (a slow network or a form
    left open). The wait is the scenario itself, computed from the assertion, not a guess."""

    def hold(route: Route) -> None:
        fields = dict(parse_qsl(route.request.post_data or ""))
        msg = saml.decode_binding(fields, binding="post")
        ends = [a.not_on_or_after for a in (msg.assertions if msg else ()) if a.not_on_or_after]
        if ends:
            # pysaml2 compares whole seconds and rejects only when now > NotOnOrAfter, so an
            # assertion stays usable until the second after it: wait past that second.
            delay = max(ends) + 1.2 - time.time()
            if delay > 0:
                time.sleep(min(delay, 5.0))
        route.continue_()

    context.route(f"{sp_base}/acs/**", hold)
    try:
        _, seen = sign_in(context, sp_base, "short")
    finally:
        context.unroute(f"{sp_base}/acs/**", hold)
    return seen


def no_passive(context: BrowserContext, sp_base: str) -> Seen:
    """A passive request (IsPassive=true) with no session at the IdP: it must answer NoPassive."""
    _, seen = sign_in(context, sp_base, "main", passive=True)
    return seen
