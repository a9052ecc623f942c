"""What the terminal prints of findings: one line each, with the hop numbers a person reads."""
from __future__ import annotations

from authtrace.store.records import Finding

MAX_EVIDENCE = 8


def finding_line(f: Finding) -> str:
    hops = ", ".join(f"#{h.number}" for h in f.evidence[:MAX_EVIDENCE])
    more = f" +{len(f.evidence) - MAX_EVIDENCE}" if len(f.evidence) > MAX_EVIDENCE else ""
    return f"{f.severity.value.upper():<7} {f.kind:<21} {f.title}  [hops {hops}{more}]"
