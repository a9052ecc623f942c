"""What the terminal prints of a `Comparison`: both sides in a line each, then the differences in
rank order (the ones that explain BAD's findings first, saying which), then the expected ones in one
line. Hop numbers are each side's own (`GOOD #9`, `BAD #16`)."""
from __future__ import annotations

from collections.abc import Iterable

from authtrace.reports.diagnose import Analysis
from authtrace.reports.diff_model import Comparison, Difference, Rank, StepPair
from authtrace.store.records import Hop

MAX_VALUE = 110  # characters of a value on one line
MAX_HOPS = 6


def hop_refs(hops: Iterable[Hop], most: int = MAX_HOPS) -> str:
    hs = list(hops)
    refs = ", ".join(f"#{h.number}" for h in hs[:most])
    return refs + (f" +{len(hs) - most}" if len(hs) > most else "")


def clip(s: str, most: int = MAX_VALUE) -> str:
    return s if len(s) <= most else s[: most - 1] + "…"


def side_line(label: str, source: str, a: Analysis) -> str:
    kinds = ", ".join(dict.fromkeys(f.kind for f in a.findings))
    found = f"{len(a.findings)} finding(s): {kinds}" if a.findings else "no finding"
    return f"{label:<4} {source}: {len(a.hops)} auth hops, {found}"


def alignment_line(c: Comparison) -> str:
    steps = [sp for fp in c.flows for sp in fp.steps]
    paired = sum(1 for sp in steps if sp.good is not None and sp.bad is not None)
    only_g = sum(1 for sp in steps if sp.bad is None)
    only_b = sum(1 for sp in steps if sp.good is None)
    nflows = sum(1 for fp in c.flows if fp.good_hops and fp.bad_hops)
    return (f"aligned {nflows} sign-in flow{'s' if nflows != 1 else ''}: {paired} steps paired, "
            f"{only_g} only in GOOD, {only_b} only in BAD")


def value(v: str | None, field: str) -> str:
    if v is None:
        return "(not made)" if field.startswith(("only", "count")) else "(none)"
    return clip(v)


def difference_lines(n: int, d: Difference) -> list[str]:
    if d.good is None or d.bad is None:
        side, v, hops = ("BAD", d.bad, d.bad_hops) if d.good is None else ("GOOD", d.good, d.good_hops)
        refs = "" if d.field.startswith("only") else f" [{side} {hop_refs(hops)}]"  # an "only in" value lists them
        head = f"{n:>3}. {d.subject}: only in {side}: {value(v, d.field)}{refs}"
    else:
        head = (f"{n:>3}. {d.subject}: GOOD {value(d.good, d.field)} [{hop_refs(d.good_hops)}]  ≠  "
                f"BAD {value(d.bad, d.field)} [{hop_refs(d.bad_hops)}]")
    out = [head]
    if d.note:
        out.append(f"       {clip(d.note, 160)}")
    for f in d.explains:
        out.append(f"       explains {f.kind}: {f.title}")
    for f in d.shows:
        if not any(f is e for e in d.explains):
            out.append(f"       shows {f.kind}: {f.title}")
    return out


def step_line(sp: StepPair) -> str:
    def cell(h: Hop | None) -> str:
        if h is None:
            return "—"
        status = "no response" if h.status is None else str(h.status)
        return f"#{h.number} {status}"
    mark = "" if sp.good is not None and sp.bad is not None else ("  only in GOOD" if sp.bad is None else
                                                                   "  only in BAD")
    return f"  {clip(sp.step, 60):<60} {cell(sp.good):>14} {cell(sp.bad):>14}{mark}"


def render(c: Comparison, steps: bool = False) -> list[str]:
    out = [side_line("GOOD", c.good_source, c.good), side_line("BAD", c.bad_source, c.bad)]
    out += [f"  note ({label}): {n}" for label, a in (("GOOD", c.good), ("BAD", c.bad)) for n in a.notes]
    out.append(alignment_line(c))
    if steps:
        out.append(f"  {'step':<60} {'GOOD':>14} {'BAD':>14}")
        for fp in c.flows:
            out += [step_line(sp) for sp in fp.steps]
    if not c.differences:
        same = c.bad.findings and {f.kind for f in c.bad.findings} <= {f.kind for f in c.good.findings}
        out.append("no relevant difference" + ("; GOOD has the same findings" if same else
                                               "" if not c.bad.findings else "; nothing compared explains BAD's "
                                               "findings"))
    rank: Rank | None = None
    for n, d in enumerate(c.differences, 1):
        if d.rank != rank:
            rank = d.rank
            out.append(f"{rank.title}:")
        out += difference_lines(n, d)
    if c.expected:
        out.append("differs, as expected (not ranked): " + ", ".join(d.subject for d in c.expected))
    return out
