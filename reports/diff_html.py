"""A `Comparison` -> one self-contained HTML page, as safe to attach to a ticket as the timeline.

The same rules as `html.py`: the Jinja2 environment with autoescape (every captured string is text,
never markup), no script, one inline stylesheet (`report.css` then `diff.css`) allowed by its hash in
the same Content-Security-Policy, `--redact-pii` through the same `Pii`, and the file is written only
by `html.write_report`, after the leak check.
"""
from __future__ import annotations

from typing import Any

from markupsafe import Markup

from authtrace.reports.diagnose import Analysis
from authtrace.reports.diff_json import pii_of
from authtrace.reports.diff_model import Comparison, Difference, FlowPair, Rank
from authtrace.reports.diff_terminal import alignment_line, clip
from authtrace.reports.html import csp, environment, package_version, stylesheet
from authtrace.reports.pii import Pii
from authtrace.store import clock
from authtrace.store.records import Finding, Hop

MAX_HOPS = 12  # hop links shown per side of a difference
_STATUS = {2: "ok", 3: "redir", 4: "err", 5: "err"}


def _css() -> str:
    return stylesheet("report.css") + "\n" + stylesheet("diff.css")


def _side(label: str, source: str, a: Analysis, shared: set[str], pii: Pii) -> dict[str, Any]:
    first = a.hops[0].started if a.hops else None
    return {"label": label, "cls": label.lower(), "name": pii.text(source), "hops": len(a.hops),
            "first": clock.stamp(first) if first else "—", "problem": pii.text(a.session.problem or ""),
            "notes": [pii.text(n) for n in a.notes],
            "findings": [{"n": n, "sev": f.severity.value, "kind": f.kind, "title": pii.text(f.title),
                          "shared": f.kind in shared, "evidence": [h.number for h in f.evidence[:24]]}
                         for n, f in enumerate(a.findings, 1)]}


def _links(fs: tuple[Finding, ...], numbers: dict[int, int], pii: Pii) -> list[dict[str, Any]]:
    return [{"n": numbers[id(f)], "kind": f.kind, "title": pii.text(f.title)} for f in fs]


def _difference(n: int, d: Difference, numbers: dict[int, int], pii: Pii) -> dict[str, Any]:
    absent = "not made" if d.field.startswith(("only", "count")) else "not there"
    return {"n": n, "subject": pii.text(d.subject), "good": pii.text(d.good), "bad": pii.text(d.bad),
            "absent": absent, "note": pii.text(d.note),
            "good_hops": [h.number for h in d.good_hops[:MAX_HOPS]], "more_good": max(0, len(d.good_hops) - MAX_HOPS),
            "bad_hops": [h.number for h in d.bad_hops[:MAX_HOPS]], "more_bad": max(0, len(d.bad_hops) - MAX_HOPS),
            "explains": _links(d.explains, numbers, pii),
            "shows": _links(tuple(f for f in d.shows if not any(f is e for e in d.explains)), numbers, pii)}


def _cell(h: Hop | None, side: str, pii: Pii) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"n": h.number, "anchor": f"{side}-{h.number}", "status": "—" if h.status is None else h.status,
            "scls": _STATUS.get((h.status or 0) // 100, "none"), "req": pii.text(f"{h.method} {h.host}{h.path}"),
            "err": pii.text(h.error.error) if h.error and h.error.error else ""}


def _flow(fp: FlowPair, differing: set[int], pii: Pii) -> dict[str, Any]:
    def tag(n: int | None) -> str:
        return "hops in no flow" if n is None else f"F{n}"
    title = f"GOOD {tag(fp.good)} · BAD {tag(fp.bad)}"
    if not fp.good_hops or not fp.bad_hops:
        title = f"a sign-in flow only in {'GOOD' if fp.good_hops else 'BAD'}"
    rows = []
    for sp in fp.steps:
        h = sp.good if sp.good is not None else sp.bad
        assert h is not None
        only = "GOOD" if sp.bad is None else "BAD" if sp.good is None else ""
        touched = any(id(x) in differing for x in (sp.good, sp.bad) if x is not None)
        rows.append({"step": pii.text(sp.step.split(" ", 1)[1] if " " in sp.step else ""), "role": h.role.value,
                     "only": only, "cls": "only" if only else "differs" if touched else "",
                     "g": _cell(sp.good, "g", pii), "b": _cell(sp.bad, "b", pii)})
    return {"title": title, "rows": rows}


def _verdict(c: Comparison) -> dict[str, str]:
    if not c.differences:
        return {"sev": "ok", "text": "No relevant difference between GOOD and BAD"}
    first = c.differences[0]
    what = (f"{first.subject} only in {'BAD' if first.good is None else 'GOOD'}"
            if first.good is None or first.bad is None else
            f"{first.subject}: GOOD {clip(first.good, 80)}, BAD {clip(first.bad, 80)}")
    if first.explains:
        return {"sev": "error", "text": f"{what} — this explains BAD's {', '.join(f.kind for f in first.explains)}"}
    if first.rank == Rank.EXPLAINS:
        return {"sev": "error", "text": f"{what} — where BAD fails ({', '.join(f.kind for f in first.shows)}); "
                                        "no compared fact explains it"}
    n = len(c.differences)
    return {"sev": "warning", "text": f"{n} relevant difference{'s' if n != 1 else ''}, none tied to a finding of BAD"}


def _sentence(s: str) -> str:
    return s[:1].upper() + s[1:]


def render_diff_html(c: Comparison, redact_pii: bool = False) -> str:
    """The diff page of one comparison. With `redact_pii`, people and addresses are masked."""
    pii = pii_of(c, redact_pii)
    numbers = {id(f): n for n, f in enumerate(c.bad.findings, 1)}
    groups: list[dict[str, Any]] = []
    for n, d in enumerate(c.differences, 1):
        if not groups or groups[-1]["rank"] != d.rank:
            groups.append({"rank": d.rank, "cls": d.rank.name.lower(), "title": d.rank.title, "diffs": []})
        groups[-1]["diffs"].append(_difference(n, d, numbers, pii))
    differing = {id(h) for d in c.differences for h in (*d.good_hops, *d.bad_hops)}
    shared = {f.kind for f in c.good.findings}
    css = _css()
    ctx = {
        "css": Markup(css),  # the package's own static stylesheets, never captured data
        "csp": Markup(csp(css)),
        "good": _side("GOOD", c.good_source, c.good, set(), pii),
        "bad": _side("BAD", c.bad_source, c.bad, shared, pii),
        "verdict": {k: pii.text(v) for k, v in _verdict(c).items()},
        "ranks": [{"cls": g["cls"], "title": g["title"], "count": len(g["diffs"])} for g in groups],
        "groups": groups, "expected": [{"subject": pii.text(d.subject)} for d in c.expected],
        "aligned": _sentence(alignment_line(c)), "flows": [_flow(fp, differing, pii) for fp in c.flows],
        "redacted": redact_pii, "version": package_version(),
    }
    return environment().get_template("diff.html").render(ctx)
