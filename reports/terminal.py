"""What the terminal prints of findings: one line each, with the hop numbers a person reads; the
severity in colour on a terminal, never when piped or with NO_COLOR set (https://no-color.org)."""
from __future__ import annotations

import os
from typing import TextIO

from authtrace.store.records import Finding, Severity

MAX_EVIDENCE = 8
COLOURS = {Severity.ERROR: "\033[1;31m", Severity.WARNING: "\033[1;33m", Severity.INFO: "\033[1;34m"}
RESET = "\033[0m"


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def finding_line(f: Finding, colour: bool = False) -> str:
    hops = ", ".join(f"#{h.number}" for h in f.evidence[:MAX_EVIDENCE])
    more = f" +{len(f.evidence) - MAX_EVIDENCE}" if len(f.evidence) > MAX_EVIDENCE else ""
    label = f"{f.severity.value.upper():<7}"
    if colour:
        label = f"{COLOURS[f.severity]}{label}{RESET}"
    return f"{label} {f.kind:<21} {f.title}  [hops {hops}{more}]"
