"""In-process cost of the authtrace addon per flow, on the live benchmark's own traffic.

    python bench/addon_cost.py POOL.json [--mix ordinary|auth] [--n 4000] [--profile]

Builds mitmproxy flows from exactly the bytes loadgen.py sends and upstream.py answers, then calls
the addon's hooks (`requestheaders`, `response`) as mitmproxy would, with the real HopWriter thread
writing to a fresh SQLite file. Prints µs per flow on the event loop (what delays the proxy) and
process CPU µs per flow including the writer thread (what competes for the 2 cores). Much less
noisy than the live runs; read it against bare mitmdump's ≈ 2-3 ms of CPU per request.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from traffic import AUTH_WARMUP, MIX, Answers, Requests, load_pool


def _split(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers.append((k.strip(), v.strip()))
    return lines[0], headers, body


def make_flows(pool: dict, mix: str, n: int, port: int = 8000) -> list:
    from mitmproxy import http
    from mitmproxy.test import tflow

    reqs = Requests(pool, port, absolute=True)
    answers = Answers(pool, port)
    kinds = (AUTH_WARMUP if mix == "auth" else []) + [MIX[mix][i % len(MIX[mix])] for i in range(n)]
    flows = []
    t = time.time()
    for i, kind in enumerate(kinds):
        w = i % 16
        host, raw = reqs.build(kind, w, i)
        line, headers, body = _split(raw)
        method, target, _ = line.split(b" ", 2)
        req = http.Request.make(method.decode(), target.decode(), body, http.Headers(headers))
        f = tflow.tflow(req=req)
        f.request.timestamp_start, f.request.timestamp_end = t + i * 0.001, t + i * 0.001 + 0.0002
        rline, rheaders, rbody = _split(answers.answer(method, target.split(b":" + str(port).encode(), 1)[-1]))
        resp = http.Response.make(int(rline[9:12]), b"", http.Headers(rheaders))
        resp.raw_content = rbody
        resp.timestamp_start, resp.timestamp_end = t + i * 0.001 + 0.0005, t + i * 0.001 + 0.0008
        f.response = resp
        flows.append(f)
    return flows


def measure(flows: list, db_path: str, profile: str | None = None) -> dict:
    from authtrace.addons.capture import AuthTrace
    from authtrace.addons.context import CaptureContext
    from authtrace.store import db
    from authtrace.store.writer import HopWriter

    engine = db.open_db(db_path)
    sid = db.new_session(engine, "bench", "live", "live")
    addon = AuthTrace()
    addon.engine, addon.session_id = engine, sid
    addon.context = CaptureContext(db.fingerprint_key(engine))
    addon.writer = HopWriter(engine, sid)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    for f in flows:
        addon.requestheaders(f)
        addon.response(f)
    if prof:
        prof.disable()
    t1 = time.perf_counter()
    addon.writer.close()
    t2 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    import sqlite3

    hops = sqlite3.connect(db_path).execute("select count(*) from hop").fetchone()[0]
    n = len(flows)
    if prof:
        prof.dump_stats(profile)
    return {"flows": n, "hops": hops, "loop_us_per_flow": round((t1 - t0) / n * 1e6, 1),
            "writer_drain_s": round(t2 - t1, 3),
            "cpu_us_per_flow": round(((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) / n * 1e6, 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("pool")
    ap.add_argument("--mix", choices=sorted(MIX), default="auth")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--profile", metavar="FILE", help="write cProfile stats of the hook calls to FILE")
    a = ap.parse_args()
    flows = make_flows(load_pool(a.pool), a.mix, a.n)
    with tempfile.TemporaryDirectory() as tmp:
        out = measure(flows, os.path.join(tmp, "cost.db"), a.profile)
    out["mix"] = a.mix
    print(json.dumps(out))
