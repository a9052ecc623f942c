"""Session -> findings (stored, recomputed on every call) -> the JSON a script or CI reads."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from authtrace.reports.checks import notes, run_checks
from authtrace.store import db


@dataclass
class Analysis:
    session: object
    hops: list
    tokens: list
    findings: list[dict]
    notes: list[str]


def analyse(engine, session_id: int, expect_audience: dict[str, str] | None = None) -> Analysis:
    session = db.load_session(engine, session_id)
    hops = db.load_hops(engine, session_id)
    tokens = db.load_tokens(engine, session_id)
    findings = run_checks(hops, tokens, expect_audience)
    db.replace_findings(engine, session_id, findings)
    return Analysis(session, hops, tokens, findings, notes(hops))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_json(a: Analysis) -> dict:
    by_id = {h.id: h for h in a.hops}
    return {
        "source": a.session.source,
        "session": a.session.id,
        "hops": len(a.hops),
        "findings": [
            {"kind": f["kind"], "severity": f["severity"], "title": f["title"], "explanation": f["explanation"],
             "causes": f["causes"], "next_step": f["next_step"],
             "evidence": [{"hop": h.id, "started": iso(h.started), "method": h.method, "url": h.url,
                           "status": h.status} for h in (by_id[e] for e in f["evidence"] if e in by_id)]}
            for f in a.findings],
        "notes": a.notes,
    }


def finding_line(f: dict) -> str:
    hops = ", ".join(f"#{e}" for e in f["evidence"][:8])
    return f"{f['severity'].upper():<7} {f['kind']:<21} {f['title']}  [hops {hops}]"
