"""Set the results of several `bench/run.py` runs side by side: one column per run, grouped by
generation (Python and mitmproxy version), for every figure that has a budget.

    .venv/bin/python bench/run.py --out /tmp/r1.json          # three runs under each generation
    .venv-next/bin/python bench/run.py --out /tmp/n1.json
    python bench/compare.py /tmp/r1.json /tmp/r2.json /tmp/r3.json /tmp/n1.json ...

Prints a Markdown table (for docs/performance.md): each budgeted figure's ratio (or seconds) per
run, and whether every run of a generation met it. Nothing is measured here.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # the table and budgets of this checkout, also for results of older runs


def load(path: str) -> dict:
    with open(path) as fh:
        res = json.load(fh)
    res["table"] = run.table(res)[1]  # rebuilt from the raw figures with today's budgets
    return res


def generation(res: dict) -> str:
    m = res["meta"]
    return f"Python {m['python']}, mitmproxy {m['mitmproxy']}"


def budgeted(res: dict) -> dict[str, tuple[str, str]]:
    """figure -> (shown value, status) for the rows that carry a budget."""
    out = {}
    for row in res.get("table", []):
        if row["budget"] in ("-", None):
            continue
        shown = f"{row['ratio']:.2f}" if row["ratio"] is not None else str(row["value"])
        out[f"{row['section']}: {row['figure']}"] = (shown, "met" if row["status"] == "met" else "missed")
    return out


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__)
        return 2
    runs = [(p, load(p)) for p in paths]
    runs.sort(key=lambda r: (generation(r[1]), r[1]["meta"]["date"]))
    figures: list[str] = []
    for _, res in runs:
        for f in budgeted(res):
            if f not in figures:
                figures.append(f)
    head = ["figure", "budget"]
    for _, res in runs:
        m = res["meta"]
        head.append(f"{m['python']} / {m['mitmproxy']}<br>{m['date'][11:]}{' quick' if res.get('quick') else ''}")
    gens = sorted({generation(r) for _, r in runs})
    head += [f"all runs, {g}" for g in gens]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    budgets = {}
    for _, res in runs:
        for row in res.get("table", []):
            budgets[f"{row['section']}: {row['figure']}"] = row["budget"]
    for f in figures:
        cells = [f, str(budgets.get(f, ""))]
        by_gen: dict[str, list[str]] = {g: [] for g in gens}
        for _, res in runs:
            shown, status = budgeted(res).get(f, ("–", "not measured"))
            cells.append(shown if status == "met" else f"**{shown}**")
            by_gen[generation(res)].append(status)
        for g in gens:
            st = by_gen[g]
            cells.append("met" if st and all(s == "met" for s in st) else
                         f"missed in {sum(s != 'met' for s in st)} of {len(st)}" if st else "–")
        print("| " + " | ".join(cells) + " |")
    loads = ", ".join(f"{r['meta']['loadavg_start'][0]:.1f}→{r['meta']['loadavg_end'][0]:.1f}" for _, r in runs)
    print(f"\nload average at start→end of each run: {loads}; bold: the budget is missed in that run.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
