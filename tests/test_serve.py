"""`authtrace serve`: the read-only viewer. Its pages over HTTP on both backends (list, filter,
timeline, downloads, refusals, nothing written), then for real in headless Chromium: list, filter,
open, download; and bound off loopback, a request without the access token is refused."""
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from authtrace.addons.importers import import_file
from authtrace.reports.diagnose import analyse
from authtrace.reports.html import csp
from authtrace.serve import LIST_CSS, make_server
from authtrace.store import db, models

from builders import IDP, signin_flows, to_har
from liverig import free_port
from test_report import chromium  # noqa: F401 - the report's headless Chromium fixture

SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY",
                    "cache-control": "no-store"}


def fill(url: str, tmp_path) -> None:
    """Two imported captures: one complete sign-in, and one that only calls an API."""
    engine = db.open_db(url)
    flows = signin_flows(time.time() - 3600)
    (tmp_path / "complete.har").write_text(json.dumps(to_har(flows)))
    (tmp_path / "api-only.har").write_text(json.dumps(to_har(flows[-1:])))
    for name in ("complete.har", "api-only.har"):
        res = import_file(engine, str(tmp_path / name))
        analyse(engine, db.load_session(engine, res.session_id))
    engine.dispose()


def get(url: str, method: str = "GET", headers: dict | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.fixture
def viewer(store_url, tmp_path):
    fill(store_url, tmp_path)
    engine = db.open_db(store_url, readonly=True)
    server, _ = make_server(engine, "the store", "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", store_url
    server.shutdown()
    server.server_close()
    engine.dispose()


def test_viewer_pages(viewer):
    base, url = viewer
    with db.open_db(url).begin() as conn:  # the viewer must not write them back
        conn.execute(sa.delete(models.Finding))
    status, headers, body = get(base + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert "form-action 'self'" in headers["content-security-policy"] and "script" not in headers["content-security-policy"]
    assert SECURITY_HEADERS.items() <= headers.items()
    page = body.decode()
    assert page.count("<tr data-session=") == 2 and "complete.har" in page and "api-only.har" in page
    assert "<script" not in page and LIST_CSS.strip()[:40] in page

    _, _, body = get(base + f"/?host={IDP}")
    assert body.decode().count("<tr data-session=") == 1 and "complete.har" in body.decode()
    _, _, body = get(base + "/?text=api-only&since=7d")
    assert body.decode().count("<tr data-session=") == 1
    status, _, body = get(base + "/?since=whenever")
    assert status == 400 and "is no time" in body.decode()

    status, headers, body = get(base + "/sessions/1")
    assert status == 200 and headers["content-security-policy"] == csp() + "; frame-ancestors 'none'"
    assert "content-disposition" not in headers and b"Content-Security-Policy" in body
    status, headers, body = get(base + "/sessions/1/report.html")
    assert status == 200 and headers["content-disposition"] == 'attachment; filename="authtrace-1.html"'
    status, headers, body = get(base + "/sessions/2/report.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["session"] == 2
    assert get(base + "/sessions/99")[0] == 404 and get(base + "/etc/passwd")[0] == 404
    status, headers, _ = get(base + "/", method="HEAD")
    assert status == 200 and "content-security-policy" in headers

    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = get(base + "/sessions/1", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD" and "content-security-policy" in headers
    status, _, _ = get(base + "/", headers={"Host": "attacker.test"})  # a rebinding page's request
    assert status == 421
    engine = db.open_db(url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(models.Finding)).scalar_one() == 0
    engine.dispose()


class Served:
    """`authtrace serve` as a user runs it, its output in a file."""

    def __init__(self, tmp_path, dbp: str, *args: str):
        self.port = free_port()
        self.log = tmp_path / f"serve-{self.port}.out"
        self._fh = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "authtrace", "serve", "--db", dbp, "--port",
                                      str(self.port), *args], stdout=self._fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"serving" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.output())
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_bytes().decode()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._fh.close()


def test_serve_in_chromium_list_filter_open_download(chromium, tmp_path):  # noqa: F811
    dbp = str(tmp_path / "store.db")
    fill(dbp, tmp_path)
    served = Served(tmp_path, dbp)
    context = chromium.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        r = page.goto(served.base + "/")
        assert r.status == 200 and "form-action 'self'" in r.headers["content-security-policy"]
        assert page.locator("#sessions tbody tr").count() == 2

        page.fill("input[name=host]", IDP)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"host=login\.microsoftonline\.com"))
        assert page.locator("#sessions tbody tr").count() == 1
        assert page.input_value("input[name=host]") == IDP

        with page.expect_navigation():
            page.click("#sessions tbody tr a >> text=complete.har")
        assert page.url == served.base + "/sessions/1"
        assert page.locator("details").count() >= 6  # the timeline's hops, the report's own HTML
        assert "#2" in page.content() or "#1" in page.content()

        page.goto(served.base + "/")
        with page.expect_download() as dl:
            page.click("a[href='/sessions/1/report.html']")
        assert dl.value.suggested_filename == "authtrace-1.html"
        saved = tmp_path / "downloaded.html"
        dl.value.save_as(saved)
        assert "Content-Security-Policy" in saved.read_text() and "login.microsoftonline.com" in saved.read_text()
        with page.expect_download() as dl:
            page.click("a[href='/sessions/2/report.json']")
        assert dl.value.suggested_filename == "authtrace-2.json"
        dl.value.save_as(tmp_path / "downloaded.json")
        assert json.loads((tmp_path / "downloaded.json").read_text())["session"] == 2
        assert not [p for p in problems if "Content Security Policy" in p], problems
    finally:
        context.close()
        served.close()
    assert "127.0.0.1" in served.output() and "token" not in served.output()


def test_serve_off_loopback_needs_the_token(chromium, tmp_path):  # noqa: F811
    dbp = str(tmp_path / "store.db")
    fill(dbp, tmp_path)
    served = Served(tmp_path, dbp, "--host", "0.0.0.0")
    try:
        out = served.output()
        token = re.search(r"token: (\S+)", out).group(1)
        assert f"/?token={token}" in out and "needs this access token" in out
        status, headers, body = get(served.base + "/")
        assert status == 401 and b"access token" in body and "content-security-policy" in headers
        assert get(served.base + "/sessions/1/report.json", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert get(served.base + "/sessions/1/report.json", headers={"Authorization": f"Bearer {token}"})[0] == 200

        context = chromium.new_context()
        page = context.new_page()
        assert page.goto(served.base + "/sessions/1").status == 401
        r = page.goto(served.base + f"/?token={token}&host={IDP}")
        assert r.status == 200 and page.url == served.base + f"/?host={IDP}"  # the token left the address
        assert page.locator("#sessions tbody tr").count() == 1
        assert page.goto(served.base + "/sessions/1").status == 200  # the cookie carries it now
        cookie = next(c for c in context.cookies() if c["name"] == "authtrace_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        context.close()
        other = chromium.new_context()
        assert other.new_page().goto(served.base + "/").status == 401
        other.close()
    finally:
        served.close()
