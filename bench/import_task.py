"""One import-side measurement in a fresh process (so peak RSS belongs to that one operation).

    python bench/import_task.py orjson FILE.har
    python bench/import_task.py flowreader FILE            # mitmproxy's FlowReader (HAR or .mitm)
    python bench/import_task.py import FILE DB              # authtrace's import_file into a fresh SQLite file
    python bench/import_task.py import FILE DB --profile OUT  # same, under cProfile

Modules are imported before the clock starts (start-up is measured once, by the CLI run in run.py).
Prints one JSON object: wall_s, cpu_s, rss_base_mb (after imports), peak_rss_mb (ru_maxrss) and
peak_delta_mb (peak minus base: what the operation itself needed), plus what was read.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main(argv: list[str]) -> dict:
    op, path = argv[0], argv[1]
    import orjson
    from mitmproxy import http
    from mitmproxy.io import FlowReader

    from authtrace.addons.importers import import_file
    from authtrace.store import db

    prof = None
    if "--profile" in argv:
        import cProfile

        prof = cProfile.Profile()
    base = _rss_mb()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    out: dict = {}
    if op == "orjson":
        with open(path, "rb") as fh:
            doc = orjson.loads(fh.read())
        out["entries"] = len(doc["log"]["entries"])
    elif op == "flowreader":
        n = 0
        with open(path, "rb") as fh:
            for f in FlowReader(fh).stream():
                n += isinstance(f, http.HTTPFlow)
        out["flows"] = n
    elif op == "import":
        engine = db.open_db(argv[2])
        res = import_file(engine, path)
        engine.dispose()
        out.update(flows=res.flows, hops=res.hops, skipped=res.skipped, problem=res.problem)
    else:
        raise SystemExit(f"unknown op {op}")
    if prof:
        prof.disable()
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    if prof:
        prof.dump_stats(argv[argv.index("--profile") + 1])
    peak = r1.ru_maxrss / 1e3  # KiB on Linux
    out.update(op=op, file=os.path.basename(path), wall_s=round(t1 - t0, 3),
               cpu_s=round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 3),
               rss_base_mb=round(base, 1), peak_rss_mb=round(peak, 1), peak_delta_mb=round(peak - base, 1))
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
