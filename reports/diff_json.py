"""The JSON of `authtrace diff --json` (docs/diff.schema.json): the same `Comparison` the terminal and
the HTML show. Hops are numbers (each side's own), times ISO-8601 UTC, URLs redacted as stored;
`--redact-pii` masks people and addresses in every text."""
from __future__ import annotations

from typing import Any

from authtrace.reports.diagnose import Analysis
from authtrace.reports.diff_model import Comparison, Difference
from authtrace.reports.jsonout import hop_json
from authtrace.reports.pii import Pii
from authtrace.store.records import Finding

SCHEMA = "https://authtrace.dev/schema/diff-1.json"  # docs/diff.schema.json


def pii_of(c: Comparison, redact_pii: bool) -> Pii:
    """One mask table for both sides, so the same person has the same mask in GOOD and BAD."""
    return Pii(redact_pii, [t for a in (c.good, c.bad) for h in a.hops for t in h.tokens])


def _finding(f: Finding, pii: Pii) -> dict[str, Any]:
    return {"kind": f.kind, "severity": f.severity.value, "title": pii.text(f.title),
            "evidence": [h.number for h in f.evidence]}


def _side(a: Analysis, source: str, pii: Pii) -> dict[str, Any]:
    return {"source": pii.text(source), "session": a.session.id, "hops": len(a.hops),
            "verdict": {"class": a.verdict[0], "text": pii.text(a.verdict[1])},
            "findings": [_finding(f, pii) for f in a.findings], "notes": [pii.text(n) for n in a.notes],
            "problems": [pii.text(a.session.problem)] if a.session.problem else []}


def _difference(d: Difference, pii: Pii) -> dict[str, Any]:
    return {"rank": d.rank.name.lower(), "group": d.group.value, "subject": pii.text(d.subject), "field": d.field,
            "good": pii.text(d.good), "bad": pii.text(d.bad), "note": pii.text(d.note),
            "good_hops": [h.number for h in d.good_hops], "bad_hops": [h.number for h in d.bad_hops],
            "explains": [{"kind": f.kind, "title": pii.text(f.title)} for f in d.explains],
            "shows": [{"kind": f.kind, "title": pii.text(f.title)} for f in d.shows]}


def to_json(c: Comparison, redact_pii: bool = False) -> dict[str, Any]:
    pii = pii_of(c, redact_pii)
    return {
        "$schema": SCHEMA,
        "good": _side(c.good, c.good_source, pii),
        "bad": _side(c.bad, c.bad_source, pii),
        "relevant": c.relevant,
        "differences": [_difference(d, pii) for d in c.differences],
        "expected": [{"subject": pii.text(d.subject), "good_hops": [h.number for h in d.good_hops],
                      "bad_hops": [h.number for h in d.bad_hops]} for d in c.expected],
        "flows": [{"good": fp.good, "bad": fp.bad,
                   "steps": [{"step": pii.text(sp.step),
                              "good": hop_json(sp.good, c.good.flows, pii) if sp.good is not None else None,
                              "bad": hop_json(sp.bad, c.bad.flows, pii) if sp.bad is not None else None}
                             for sp in fp.steps]} for fp in c.flows],
    }
