"""`authtrace serve`: a read-only web viewer over a store, for a team that shares one.

Pages: the session list with the filters of `authtrace sessions` (`/`), a session's timeline, the
same HTML as `authtrace report` (`/sessions/N`), and its HTML and JSON as downloads
(`/sessions/N/report.html`, `/sessions/N/report.json`). Nothing writes: the handler answers GET and
HEAD only, analyses without keeping findings, and the store is opened read-only in the database
itself (`db.open_db(readonly=True)`).

Who may look:
* bound to a loopback address (the default, 127.0.0.1), any local client may, and the `Host` header
  must name the loopback address: a web page that rebinds its own name to 127.0.0.1 gets nothing;
* bound anywhere else, every request needs the access token printed at start: an
  `Authorization: Bearer TOKEN` header (scripts), or the `authtrace_token` cookie (HttpOnly,
  SameSite=Strict), which a browser gets by opening the printed `/?token=TOKEN` URL once: the
  viewer sets the cookie and redirects to the same page without the token in its address.
  Tokens are compared in constant time.

Every page carries the report's Content-Security-Policy: no script, no request of any kind, the one
inline stylesheet allowed by its hash, no framing; the list page alone also allows its own filter
form to submit to the viewer (`form-action 'self'`).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup
from sqlalchemy.engine import Engine

from authtrace.reports.diagnose import Analysis, analyse
from authtrace.reports.html import csp, render_html, style_hash
from authtrace.reports.jsonout import to_json
from authtrace.reports.leakcheck import describe, scan
from authtrace.store import clock, db
from authtrace.store.search import SessionFilter

COOKIE = "authtrace_token"
LIST_LIMIT = 200
FILTERS = (("host", "host", "login.microsoftonline.com or *.ai.azure.com"), ("client_id", "client id", ""),
           ("tenant", "tenant", ""), ("finding", "finding kind", "reused_code"),
           ("since", "since", "7d or 2026-11-30"), ("until", "until", ""), ("text", "text", "AADSTS50011"))

LIST_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1c1c1c;background:#fff}
h1{font-size:1.3rem;margin:0 0 1rem}
form{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin-bottom:1rem}
label{display:flex;flex-direction:column;font-size:.8rem;color:#555}
input{font:inherit;padding:.2rem .4rem;min-width:9rem}
button{font:inherit;padding:.25rem .9rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
th{font-size:.8rem;color:#555}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.error{color:#a40000}.warning{color:#8a5a00}.muted{color:#666}
p.problem{color:#a40000;margin:.5rem 0}
@media (prefers-color-scheme: dark){body{background:#151515;color:#ddd}th,label,.muted{color:#aaa}
a{color:#8cb4ff}td,th{border-color:#333}}
"""

LIST_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>authtrace: {{ store }}</title>
<style>{{ css }}</style>
</head>
<body>
<h1>Capture sessions in {{ store }}</h1>
<form method="get" action="/" id="filter">
{% for name, label, hint in filters %}
<label>{{ label }}<input name="{{ name }}" value="{{ values[name] }}" placeholder="{{ hint }}"></label>
{% endfor %}
<button type="submit">Filter</button> <a href="/">clear</a>
</form>
{% if problem %}<p class="problem" id="problem">{{ problem }}</p>{% endif %}
<p class="muted" id="count">{{ summary }}</p>
<table id="sessions">
<thead><tr><th>id</th><th>name</th><th>kind</th><th>first hop</th><th>span</th><th>hops</th><th>findings</th>
<th>roles</th><th>downloads</th></tr></thead>
<tbody>
{% for s in sessions %}
<tr data-session="{{ s.id }}">
<td class="n"><a href="/sessions/{{ s.id }}">{{ s.id }}</a></td>
<td><a href="/sessions/{{ s.id }}">{{ s.name }}</a>
{% if s.problem %} <span class="error">! {{ s.problem }}</span>{% endif %}
<div class="muted">{{ s.source }}</div></td>
<td>{{ s.kind }}</td><td>{{ s.first }}</td><td>{{ s.span }}</td><td class="n">{{ s.hops }}</td>
<td>{% for sev, n in s.findings %}<span class="{{ sev }}">{{ n }} {{ sev }}</span> {% endfor %}</td>
<td>{{ s.roles }}</td>
<td><a href="/sessions/{{ s.id }}/report.html" download>HTML</a>
<a href="/sessions/{{ s.id }}/report.json" download>JSON</a></td>
</tr>
{% endfor %}
</tbody>
</table>
</body>
</html>
"""


class ServeError(Exception):
    """The viewer cannot start; one sentence for the user."""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    policy: str = field(default_factory=lambda: _policy_for_list())


def _policy_for_list() -> str:
    """The report's policy with the list page's own stylesheet, and its filter form allowed to submit here."""
    return (f"default-src 'none'; style-src {style_hash(LIST_CSS)}; img-src data:; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def _message_page(title: str, text: str) -> bytes:
    env = Environment(autoescape=True)
    return env.from_string("<!doctype html><html lang=en><meta charset=utf-8><title>{{ t }}</title>"
                           "<style>{{ css }}</style><h1>{{ t }}</h1><p>{{ x }}</p></html>"
                           ).render(t=title, x=text, css=Markup(LIST_CSS)).encode()


class Viewer:
    """The viewer's pages as a function of the request: (method, target, headers) -> Response."""

    def __init__(self, engine: Engine, store: str, token: str | None = None,
                 hosts: frozenset[str] | None = None, redact_pii: bool = False):
        self.engine, self.store, self.token, self.hosts, self.redact_pii = engine, store, token, hosts, redact_pii
        self._env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self._list = self._env.from_string(LIST_HTML)
        self._cache: OrderedDict[tuple[Any, ...], Analysis] = OrderedDict()
        self._lock = threading.Lock()

    # ---- access --------------------------------------------------------------------------------

    def _refused(self, target: str, headers: dict[str, str]) -> Response | None:
        if self.hosts is not None and headers.get("host", "").lower() not in self.hosts:
            return Response(421, _message_page("Wrong host", "This viewer answers only to its loopback address."),
                            policy=_policy_for_list())
        if self.token is None:
            return None
        url = urlsplit(target)
        given = parse_qs(url.query).get("token", [""])[0]
        if given and self._ok(given):  # the printed URL, opened once: keep the token in a cookie instead
            rest = urlencode([(k, v) for k, vs in parse_qs(url.query).items() if k != "token" for v in vs], doseq=True)
            return Response(303, headers={"Location": url.path + (f"?{rest}" if rest else ""),
                                          "Set-Cookie": f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"},
                            policy=_policy_for_list())
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if (bearer and self._ok(bearer)) or self._ok(_cookie(headers.get("cookie", ""), COOKIE)):
            return None
        return Response(401, _message_page("Access token needed", "This viewer needs the access token that "
                                           "`authtrace serve` printed: open the URL it printed once, or send "
                                           "Authorization: Bearer TOKEN."),
                        headers={"WWW-Authenticate": 'Bearer realm="authtrace"'}, policy=_policy_for_list())

    def _ok(self, given: str) -> bool:
        assert self.token is not None
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    # ---- pages ---------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str]) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, _message_page("Read-only", "This viewer only reads."), headers={"Allow": "GET, HEAD"},
                            policy=_policy_for_list())
        refused = self._refused(target, headers)
        if refused is not None:
            return refused
        url = urlsplit(target)
        parts = [p for p in url.path.split("/") if p]
        if not parts:
            return self.list_page(parse_qs(url.query))
        if parts[0] == "sessions" and len(parts) in (2, 3) and parts[1].isdigit():
            sid = int(parts[1])
            if len(parts) == 2:
                return self.session_page(sid)
            if parts[2] in ("report.html", "report.json"):
                return self.session_page(sid, download=parts[2].rpartition(".")[2])
        return Response(404, _message_page("Not found", "No such page."), policy=_policy_for_list())

    def list_page(self, query: dict[str, list[str]]) -> Response:
        values = {name: query.get(name, [""])[0].strip() for name, _, _ in FILTERS}
        problem = ""
        since = until = None
        try:
            since = clock.parse_when(values["since"]) if values["since"] else None
            until = clock.parse_when(values["until"]) if values["until"] else None
        except ValueError as e:
            problem = str(e)
        flt = SessionFilter(host=values["host"] or None, client_id=values["client_id"] or None,
                            tenant=values["tenant"] or None, finding=values["finding"] or None,
                            since=since, until=until, text=values["text"] or None)
        rows = [] if problem else db.sessions(self.engine, flt, limit=LIST_LIMIT)
        ids = [s.id for s in rows if s.id is not None]
        roles, findings = db.role_counts(self.engine, ids), db.finding_counts(self.engine, ids)
        total = db.count_sessions(self.engine, flt) if len(rows) == LIST_LIMIT else len(rows)
        view = []
        for s in reversed(rows):  # newest first
            sid = s.id or 0
            view.append({
                "id": sid, "name": s.name, "source": s.source, "kind": s.kind, "problem": s.problem or "",
                "first": clock.stamp(s.first_seen) if s.first_seen else "—",
                "span": clock.duration(s.last_seen - s.first_seen) if s.first_seen and s.last_seen else "—",
                "hops": s.hops, "findings": sorted(findings.get(sid, {}).items()),
                "roles": ", ".join(f"{r} {n}" for r, n in sorted(roles.get(sid, {}).items(), key=lambda kv: -kv[1])),
            })
        summary = (f"{total} session(s)" + (" match" if not flt.empty() else "")
                   + (f"; the newest {LIST_LIMIT} are shown" if total > len(rows) else ""))
        page = self._list.render(store=self.store, css=Markup(LIST_CSS), filters=FILTERS, values=values,
                                 sessions=view, summary=summary, problem=problem)
        return Response(400 if problem else 200, page.encode(), policy=_policy_for_list())

    def _analysis(self, sid: int) -> Analysis | None:
        session = db.load_session(self.engine, sid)
        if session is None:
            return None
        key = (sid, session.hops, session.last_seen, session.flows_seen, session.problem)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        a = analyse(self.engine, session, keep=False)
        with self._lock:
            self._cache[key] = a
            while len(self._cache) > 4:  # a 10,000-hop analysis holds tens of MB
                self._cache.popitem(last=False)
        return a

    def session_page(self, sid: int, download: str | None = None) -> Response:
        a = self._analysis(sid)
        if a is None:
            return Response(404, _message_page("Not found", f"No capture session {sid} in this store."),
                            policy=_policy_for_list())
        if download == "json":
            text = json.dumps(to_json(a, self.redact_pii), ensure_ascii=False, indent=2)
            ctype = "application/json; charset=utf-8"
        else:
            text, ctype = render_html(a, redact_pii=self.redact_pii), "text/html; charset=utf-8"
        leaks = scan(text)
        if leaks:  # the same last check as a report file gets
            return Response(500, _message_page("Refused", f"Refusing to show session {sid}: {describe(leaks)}"),
                            policy=_policy_for_list())
        headers = {}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="authtrace-{sid}.{download}"'
        return Response(200, text.encode("utf-8", "replace"), ctype, headers,
                        policy=csp() + "; frame-ancestors 'none'")


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return ""


class _Handler(BaseHTTPRequestHandler):
    server_version = "authtrace"
    sys_version = ""
    viewer: Viewer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: URLs may hold the token
        pass

    def _answer(self, with_body: bool) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            r = self.viewer.handle(self.command, self.path, headers)
        except Exception as e:  # noqa: BLE001 - one page fails, the viewer keeps serving
            print(f"authtrace: internal error on {urlsplit(self.path).path} ({type(e).__name__}): an authtrace "
                  "bug, please report it.", file=sys.stderr)
            r = Response(500, _message_page("Internal error", "An authtrace bug: see the viewer's terminal."),
                         policy=_policy_for_list())
        self.send_response(r.status)
        for k, v in {"Content-Type": r.content_type, "Content-Length": str(len(r.body)),
                     "Content-Security-Policy": r.policy, "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
                     "Cross-Origin-Resource-Policy": "same-origin", **r.headers}.items():
            self.send_header(k, v)
        self.end_headers()
        if with_body:
            self.wfile.write(r.body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def _not_allowed(self) -> None:
        self._answer(True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_server(engine: Engine, store: str, host: str, port: int, redact_pii: bool = False,
                token: str | None = None) -> tuple[ThreadingHTTPServer, Viewer]:
    """The server, bound, not yet serving. Off loopback a token is required (made when not given)."""
    loopback = is_loopback(host)
    if not loopback and not token:
        token = secrets.token_urlsafe(24)
    try:
        server = ThreadingHTTPServer((host, port), _Handler)
    except OSError as e:
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror or e}.") from None
    server.daemon_threads = True
    bound = server.server_address[1]
    hosts = frozenset(f"{h}:{bound}" for h in ("127.0.0.1", "localhost", "[::1]", host)) if loopback else None
    viewer = Viewer(engine, store, token, hosts, redact_pii)
    handler = type("Handler", (_Handler,), {"viewer": viewer})
    server.RequestHandlerClass = handler
    return server, viewer


def run(engine: Engine, store: str, host: str, port: int, redact_pii: bool = False) -> int:
    server, viewer = make_server(engine, store, host, port, redact_pii)
    bound = server.server_address[1]
    name = socket.getfqdn() if host in ("", "0.0.0.0", "::") else host
    shown = f"[{name}]" if ":" in name else name
    if viewer.token is None:
        print(f"authtrace: serving {store} read-only on http://{shown}:{bound}/ (this machine only; Ctrl-C stops)",
              flush=True)
    else:
        print(f"authtrace: serving {store} read-only on http://{shown}:{bound}/ to other machines: every request "
              f"needs this access token (plain HTTP: put TLS in front on an untrusted network)\n"
              f"  token: {viewer.token}\n"
              f"  browser: open http://{shown}:{bound}/?token={viewer.token} once\n"
              f"  scripts: send Authorization: Bearer {viewer.token}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.dispose()
    return 0
