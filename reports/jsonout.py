"""The JSON a script or CI reads (`check --json`, `report --json`): the same content as the report."""
from __future__ import annotations

from typing import Any

from authtrace.reports.diagnose import Analysis
from authtrace.reports.pii import Pii, of_hops
from authtrace.store import clock
from authtrace.store.records import Hop, Instant


def _detail(v: Any) -> Any:
    if isinstance(v, Instant):
        return clock.stamp(v)
    if isinstance(v, (list, tuple)):
        return [_detail(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _detail(x) for k, x in v.items()}
    return v


def hop_json(h: Hop, flows: dict[int, int], pii: Pii) -> dict[str, Any]:
    """A hop as every JSON of authtrace shows it (the `hop` of docs/report.schema.json)."""
    return {"hop": h.number, "role": h.role.value, "started": clock.stamp(h.started), "method": h.method,
            "url": pii.text(h.url), "status": h.status, "flow": flows.get(h.number)}


SCHEMA = "https://authtrace.dev/schema/report-1.json"  # docs/report.schema.json


def to_json(a: Analysis, redact_pii: bool = False) -> dict[str, Any]:
    """The analysis as `check --json` and `report --json` print it (docs/report.schema.json)."""
    pii = of_hops(redact_pii, a.hops)
    s = a.signin
    return {
        "$schema": SCHEMA,
        "source": pii.text(a.session.source),
        "session": a.session.id,
        "hops": len(a.hops),
        "verdict": {"class": a.verdict[0], "text": pii.text(a.verdict[1])},
        "signin": {"source": s.source, "app_hosts": list(s.app_hosts),
                   "identity_providers": list(s.identity_providers), "issuers": list(s.issuers),
                   "tenants": list(s.tenants), "client_ids": list(s.client_ids), "flows": list(s.flows),
                   "clients": [pii.text(c) for c in s.clients],
                   "first": clock.stamp(s.first) if s.first is not None else None,
                   "last": clock.stamp(s.last) if s.last is not None else None},
        "findings": [
            {"kind": f.kind, "severity": f.severity.value, "title": pii.text(f.title),
             "explanation": pii.text(f.explanation), "causes": list(f.causes), "next_step": pii.text(f.next_step),
             "evidence": [hop_json(h, a.flows, pii) for h in f.evidence],
             "details": {k: pii.deep(_detail(v)) for k, v in f.details.items()}}
            for f in a.findings],
        "notes": [pii.text(n) for n in a.notes],
        "problems": [pii.text(a.session.problem)] if a.session.problem else [],
        "internal_errors": [f"{x.check}: {x.error}" for x in a.failures],
    }
