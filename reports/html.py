"""An analysed session -> one self-contained HTML timeline, safe to attach to a ticket.

`render_html(analysis, redact_pii=False)` is pure: records in, HTML text out. `write_report(html,
path)` runs the leak check and refuses (`LeakError`, one sentence) to write a report that holds a
raw secret.

Safety rules the output keeps:
* every captured string is hostile input. The page around the timeline and the findings come from
  the Jinja2 template (`autoescape=True`, `StrictUndefined`); each hop is built by `fragments.py`,
  where every value is escaped and markup comes only from constants;
* no script at all; the one inline `<style>` is allowed by its SHA-256 in a strict
  Content-Security-Policy (`default-src 'none'`), so the file makes no request of any kind;
* everything reads with scripting off: hop details are `<details>/<summary>`, opened for print.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from authtrace.reports.diagnose import Analysis
from authtrace.reports.fragments import LANE_TITLES, ROLES, HopView, Shared, hop_view
from authtrace.reports.header import signin_rows
from authtrace.reports.leakcheck import LeakError, describe, scan
from authtrace.reports.pii import Pii, compact, of_hops
from authtrace.reports.summary import summary_text
from authtrace.store import clock
from authtrace.store.records import Finding, Hop, Instant, Role, Severity

__all__ = ["render_html", "write_report", "LeakError", "style_hash"]

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
MAX_EVIDENCE = 24  # evidence links shown per finding
MAX_FLOWS = 24  # sign-in flows listed in the overview
FULL_TIMELINE = 5000  # up to this many hops every one is drawn; beyond, runs of alike API calls are folded


@dataclass(slots=True)
class Collapsed:
    """Hops folded into one timeline row (see `shown`): a clean sign-in flow, or alike API calls."""

    hops: list[Hop]
    flow: int | None = None
_TIMELINE = "<!-- timeline -->"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment of every page: autoescape on, undefined names an error."""
    return Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, auto_reload=False)


@lru_cache(maxsize=4)
def stylesheet(name: str = "report.css") -> str:
    """A static stylesheet of the templates folder: `report.css`, and `diff.css` for `authtrace diff`."""
    with open(os.path.join(TEMPLATE_DIR, name), encoding="utf-8") as fh:
        css = fh.read()
    if "</" in css:  # the stylesheet is static; this guards against an edit that would end <style>
        raise ValueError(f"{name} must not contain '</'")
    return css


def style_hash(css: str) -> str:
    """The CSP source expression that allows exactly this inline stylesheet."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode() + "'"


def csp(css: str | None = None) -> str:
    """The page's Content-Security-Policy; `css` is its one inline stylesheet (default: the timeline's)."""
    return (f"default-src 'none'; style-src {style_hash(stylesheet() if css is None else css)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


@lru_cache(maxsize=1)
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("authtrace")
    except PackageNotFoundError:
        return ""


def _detail(v: Any) -> str:
    return clock.stamp(v) if isinstance(v, Instant) else compact(v)


def _finding_view(f: Finding, n: int, views: dict[int, HopView], pii: Pii) -> dict[str, Any]:
    evidence = []
    for h in f.evidence[:MAX_EVIDENCE]:
        v = views.get(h.number)
        evidence.append({"id": h.number, "label": h.label, "flow": v.flow if v else None,
                         "fcls": v.fcls if v else "", "t0": v.offset if v else ""})
    more = len(f.evidence) - MAX_EVIDENCE
    if more > 0:  # the first ones link; the rest are counted (a 401 at 3,000 API calls is one finding)
        evidence.append({"id": None, "label": f"and {more} more hops", "flow": None, "fcls": "", "t0": ""})
    return {"n": n, "sev": f.severity.value, "kind": f.kind, "title": pii.text(f.title),
            "explanation": pii.text(f.explanation), "causes": [pii.text(c) for c in f.causes],
            "next_step": pii.text(f.next_step), "evidence": evidence,
            "details": [(k, pii.text(_detail(pii.claim(k, v)))) for k, v in f.details.items()
                        if v is not None and not _is_table(v)],
            "tables": [{"name": k, "head": list(v[0]), "rows": [[pii.text(_detail(x)) for x in row.values()]
                                                               for row in v]}
                       for k, v in f.details.items() if _is_table(v)]}


def _is_table(v: Any) -> bool:
    """A detail that is a list of alike rows (the requests of a duplicate callback) prints as a table."""
    return isinstance(v, list) and bool(v) and all(isinstance(r, dict) and r.keys() == v[0].keys() for r in v)


def shown(a: Analysis, limit: int = FULL_TIMELINE) -> list[Hop | Collapsed]:
    """The rows of the timeline. Up to `limit` hops, every hop. Beyond, a session is mostly the same
    clean sign-in and the same call repeated, and drawing each hop costs ~2 KB and tens of µs: every
    sign-in flow with no error and no finding folds into one row at its first hop, and runs of alike
    API calls (same endpoint, status and token, one after another) keep their first and last call and
    fold the rest. Errors and every hop a finding points at are always drawn."""
    if len(a.hops) <= limit:
        return list(a.hops)
    pinned = {id(h) for f in a.findings for h in f.evidence}
    members: dict[int, list[Hop]] = {}
    troubled: set[int] = set()
    for h in a.hops:
        flow = a.flows.get(h.number)
        if flow:
            members.setdefault(flow, []).append(h)
            if h.is_error or id(h) in pinned:
                troubled.add(flow)
    out: list[Hop | Collapsed] = []
    run: list[Hop] = []
    run_key: tuple[Any, ...] | None = None

    def flush() -> None:
        if len(run) > 2:
            out.extend([run[0], Collapsed(run[1:-1]), run[-1]])
        else:
            out.extend(run)
        run.clear()

    for h in a.hops:
        flow = a.flows.get(h.number)
        if flow and flow not in troubled:
            if members[flow][0] is h:
                flush()
                run_key = None
                out.append(Collapsed(members[flow], flow))
            continue
        key = None
        if h.role in (Role.API, Role.USERINFO) and not h.is_error and id(h) not in pinned:
            key = (h.role, h.host, h.method, h.path, h.status, tuple(t.fingerprint for t in h.tokens))
        if key is None or key != run_key:
            flush()
        run_key = key
        if key is None:
            out.append(h)
        else:
            run.append(h)
    flush()
    return out


def _collapsed_html(c: Collapsed, t0: float) -> str:
    first, last = c.hops[0], c.hops[-1]
    span = f"{clock.offset(first.started - t0)} to {clock.offset(last.started - t0)}"
    if c.flow:
        roles = ", ".join(dict.fromkeys(h.role.value for h in c.hops))
        return (f'<p class="collapsed"><span class="ftag f{(c.flow - 1) % 8}">F{c.flow}</span> a sign-in with no '
                f"error and no finding: {len(c.hops)} hops from #{first.number} ({roles}), {span}, folded to keep "
                f"a session of this size readable; the store holds every one.</p>\n")
    return (f'<p class="collapsed">#{first.number}–#{last.number}: {len(c.hops):,} more calls like the one above '
            f"({_esc(first.method)} {_esc(first.host)}{_esc(first.path)}, {first.status}, the same token), "
            f"{span}: folded to keep a session of this size readable; the store holds every one.</p>\n")


def render_html(a: Analysis, redact_pii: bool = False) -> str:
    """The timeline report of one analysed capture session as one HTML document. With `redact_pii`,
    e-mail addresses, user names, names, object ids and IP addresses are masked in claims and text."""
    hops = a.hops
    rows = shown(a, FULL_TIMELINE)
    pii = of_hops(redact_pii, hops)
    st = Shared(pii)
    drawn = [r for r in rows if isinstance(r, Hop)]
    for h in drawn:
        for t in h.tokens:
            st.hops_of.setdefault(t.fingerprint, set()).add(h.number)
    app_hosts = {h.host for h in hops if h.role == "callback"}
    t0 = hops[0].started if hops else 0.0
    views: dict[int, HopView] = {}
    parts: list[str] = []
    role_counts: dict[str, int] = {}
    for h in hops:
        role_counts[h.role.value] = role_counts.get(h.role.value, 0) + 1
    legend: dict[int, dict[str, Any]] = {}
    for h in hops:
        flow = a.flows.get(h.number)
        if flow:
            g = legend.setdefault(flow, {"n": flow, "fcls": f"f{(flow - 1) % 8}", "hops": 0, "first": h.number,
                                         "from": clock.offset(h.started - t0), "to": "", "err": False})
            g["hops"] += 1
            g["to"] = clock.offset(h.started - t0)
            g["err"] = g["err"] or h.is_error
    prev: float | None = None
    for r in rows:
        if isinstance(r, Collapsed):
            parts.append(_collapsed_html(r, t0))
            prev = r.hops[-1].started
            continue
        v = views[r.number] = hop_view(r, t0, prev, a.flows.get(r.number), st, app_hosts)
        parts.append(v.html)
        prev = r.started
    derived = sum(1 for h in hops if h.from_fragment)  # made from a Location fragment, not a flow of its own
    findings = sorted(a.findings, key=lambda f: f.severity.rank)
    fviews = [_finding_view(f, n, views, pii) for n, f in enumerate(findings, 1)]
    sess = a.session
    noise = max(0, sess.flows_seen - (len(hops) - derived)) if sess.flows_seen else 0
    first_seen = sess.first_seen or (hops[0].started if hops else None)
    last_seen = sess.last_seen or (hops[-1].started if hops else None)
    flows_legend = sorted(legend.values(), key=lambda g: g["n"])
    css = stylesheet()
    ctx = {
        "css": Markup(css),  # the package's own static stylesheet, never captured data
        "csp": Markup(csp()),
        "session": {
            "name": pii.text(sess.name or "capture"), "source": a.signin.source,
            "problem": pii.text(sess.problem or ""),
            "first": clock.stamp(first_seen) if first_seen else "—",
            "span": clock.duration(last_seen - first_seen) if first_seen and last_seen else "—",
        },
        "signin": [(label, pii.text(", ".join(values))) for label, values in signin_rows(a.signin) if values],
        "summary": summary_text(a, redact_pii),
        "verdict": {"sev": a.verdict[0], "text": pii.text(a.verdict[1])},
        "notes": [pii.text(n) for n in a.notes],
        "failures": [f"{x.check}: {x.error}" for x in a.failures],
        "findings": fviews, "counts": {s.value: sum(1 for f in findings if f.severity == s) for s in Severity},
        "timeline": Markup(_TIMELINE), "nhops": len(hops), "noise": noise, "flows_seen": sess.flows_seen,
        "flows": flows_legend[:MAX_FLOWS], "nflows": len(flows_legend),
        "roles": sorted(role_counts.items(), key=lambda kv: ROLES.index(kv[0]) if kv[0] in ROLES else 99),
        "known_roles": ROLES, "lanes": LANE_TITLES, "redacted": redact_pii, "version": package_version(),
    }
    page = environment().get_template("report.html").render(ctx)
    # the hops go in where the template printed the marker: joined once, with the page, instead of
    # copied through Jinja (megabytes at 10,000 hops). Every captured value in them was escaped by
    # fragments.py, and a captured string cannot hold the marker: escaped, "<" is "&lt;".
    # Nothing captured follows the timeline in the template, so the last marker is the template's own.
    head, mark, tail = page.rpartition(_TIMELINE)
    if not mark:
        return page
    return "".join([head, *parts, tail])


def write_report(html_text: str, path: str) -> None:
    """Write the report after the leak check. When the text holds a raw secret nothing is written and
    LeakError is raised; its message is one sentence naming what was found and where ("the report would
    contain a raw `code` value in hop 12, …"), to be printed after "refusing to write PATH: "."""
    leaks = scan(html_text)
    if leaks:
        raise LeakError(describe(leaks), leaks, path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", errors="replace") as fh:  # a lone surrogate becomes "?"
            fh.write(html_text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _esc(s: str) -> str:
    return str(escape(s))
