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
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from authtrace.reports.diagnose import Analysis
from authtrace.reports.fragments import LANE_TITLES, ROLES, HopView, Shared, hop_view
from authtrace.reports.header import signin_rows
from authtrace.reports.leakcheck import LeakError, describe, scan
from authtrace.reports.pii import Pii, compact
from authtrace.reports.summary import summary_text
from authtrace.store import clock
from authtrace.store.records import Finding, Instant, Severity

__all__ = ["render_html", "write_report", "LeakError", "style_hash"]

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
MAX_EVIDENCE = 24  # evidence links shown per finding
MAX_FLOWS = 24  # sign-in flows listed in the overview
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
            "details": [(k, pii.text(_detail(pii.claim(k, v)))) for k, v in f.details.items() if v is not None]}


def render_html(a: Analysis, redact_pii: bool = False) -> str:
    """The timeline report of one analysed capture session as one HTML document. With `redact_pii`,
    e-mail addresses, user names, names, object ids and IP addresses are masked in claims and text."""
    hops = a.hops
    pii = Pii(redact_pii, [t for h in hops for t in h.tokens])
    st = Shared(pii)
    for h in hops:
        for t in h.tokens:
            st.hops_of.setdefault(t.fingerprint, set()).add(h.number)
    app_hosts = {h.host for h in hops if h.role == "callback"}
    t0 = hops[0].started if hops else 0.0
    views: dict[int, HopView] = {}
    role_counts: dict[str, int] = {}
    legend: dict[int, dict[str, Any]] = {}
    prev: float | None = None
    for h in hops:
        v = views[h.number] = hop_view(h, t0, prev, a.flows.get(h.number), st, app_hosts)
        prev = h.started
        role_counts[v.role] = role_counts.get(v.role, 0) + 1
        if v.flow:
            g = legend.setdefault(v.flow, {"n": v.flow, "fcls": v.fcls, "hops": 0, "first": v.number,
                                           "from": v.offset, "to": v.offset, "err": False})
            g["hops"] += 1
            g["to"] = v.offset
            g["err"] = g["err"] or v.err
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
    return "".join([head, *(v.html for v in views.values()), tail])


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
