"""The plain-text summary a person pastes into a ticket (`report --summary`, and a block of the HTML
report): verdict, what sign-in it is, each finding with its evidence hops and times, and every id a
provider's support asks for."""
from __future__ import annotations

from authtrace.reports.checks.base import ids_of
from authtrace.reports.diagnose import Analysis
from authtrace.reports.header import signin_rows
from authtrace.reports.pii import of_hops
from authtrace.store import clock


def summary_text(a: Analysis, redact_pii: bool = False) -> str:
    pii = of_hops(redact_pii, a.hops)
    s, sess = a.signin, a.session
    span = f"{clock.stamp(s.first)} – {clock.stamp(s.last)}" if s.first is not None else "no auth hop"
    lines = [f"authtrace: {a.verdict[1]}",
             f"Capture: {sess.name} ({s.source}), {span}, {len(a.hops)} auth hops"]
    for label, values in signin_rows(s):
        if values:
            lines.append(f"{label}: {', '.join(values)}")
    if a.findings:
        lines.append("")
        lines.append("Findings:")
    for n, f in enumerate(a.findings, 1):
        lines.append(f"{n}. {f.severity.value.upper()} {f.kind}: {f.title}")
        ev = ", ".join(f"{h.label} {clock.time_of_day(h.started)}" for h in f.evidence[:12])
        more = f" and {len(f.evidence) - 12} more" if len(f.evidence) > 12 else ""
        lines.append(f"   evidence: {ev}{more}")
        lines.append(f"   next step: {f.next_step}")
    ids = [(h, ids_of(h)) for h in a.hops if ids_of(h)]
    if ids:
        lines.append("")
        lines.append("Ids for the provider's support:")
        for h, found in ids:
            lines.append(f"   {h.label} {h.where} at {clock.stamp(h.started)}: "
                         + ", ".join(f"{k} {v}" for k, v in found.items()))
    for note in a.notes:
        lines.append(f"Note: {note}")
    if sess.problem:
        lines.append(f"Capture incomplete: {sess.problem}")
    text: str = pii.text("\n".join(lines))
    return text + "\n"
