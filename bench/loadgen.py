"""Load generator for the live benchmark: N concurrent keep-alive clients, one asyncio process.

    python bench/loadgen.py --pool POOL.json --port UPSTREAM [--proxy PORT] --mix ordinary|auth
                            [--clients 16] [--warmup 2] [--duration 8]

With --proxy, every request goes to the proxy on 127.0.0.1:PORT in absolute form (regular proxy
mode, as a browser configured with an HTTP proxy sends plain-http requests); without it, requests
go straight to the origin (the "direct" rate that shows the client is not the bottleneck).
Each client keeps one connection per origin host open (as a browser does) and sends its next
request when the previous answer is complete. Prints one JSON object: requests/s, p50, p99 (ms),
errors, and the client's own CPU seconds while measuring.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from traffic import AUTH_WARMUP, MIX, Requests, load_pool


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    low = head.lower()
    i = low.find(b"\r\ncontent-length:")
    if i >= 0:
        j = low.find(b"\r\n", i + 2)
        n = int(low[i + 17:j].strip())
        if n:
            await reader.readexactly(n)
    elif b"transfer-encoding: chunked" in low:
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


class Worker:
    def __init__(self, w: int, reqs: Requests, mix: list[str], target: tuple[str, int] | None):
        self.w, self.reqs, self.mix, self.target = w, reqs, mix, target
        self.conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self.n = 0

    async def conn(self, host: str):
        c = self.conns.get(host)
        if c is None:
            if self.target:  # through the proxy: one proxy connection per origin host
                c = await asyncio.open_connection(*self.target)
            else:
                c = await asyncio.open_connection(host, self.reqs.port)
            self.conns[host] = c
        return c

    async def one(self, kind: str) -> int:
        host, data = self.reqs.build(kind, self.w, self.n)
        self.n += 1
        for attempt in (0, 1):
            reader, writer = await self.conn(host)
            try:
                writer.write(data)
                return await read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.conns.pop(host, None)
                writer.close()
                if attempt:
                    raise
        return 0

    async def run(self, warm_until: float, end: float, lat: list[float], errors: list[int], total: list[int]) -> None:
        i = self.w  # each worker starts at its own offset in the mix
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            kind = self.mix[i % len(self.mix)]
            i += 1
            t = time.perf_counter()
            try:
                status = await self.one(kind)
                ok = 200 <= status < 400
            except Exception:
                ok = False
            t2 = time.perf_counter()
            total[0] += 1
            if t >= warm_until and t2 <= end:
                if ok:
                    lat.append(t2 - t)
                else:
                    errors[0] += 1
        for _, writer in self.conns.values():
            writer.close()


async def main(a: argparse.Namespace) -> dict:
    pool = load_pool(a.pool)
    reqs = Requests(pool, a.port, absolute=bool(a.proxy))
    target = ("127.0.0.1", a.proxy) if a.proxy else None
    workers = [Worker(w, reqs, MIX[a.mix], target) for w in range(a.clients)]
    if a.mix == "auth":  # the app learns discovery + JWKS before the measured traffic starts
        for w in workers[:2]:
            for kind in AUTH_WARMUP:
                await w.one(kind)
    lat: list[float] = []
    errors = [0]
    total = [0]
    t0 = time.perf_counter()
    warm_until, end = t0 + a.warmup, t0 + a.warmup + a.duration
    cpu0 = None

    async def cpu_mark():
        nonlocal cpu0
        await asyncio.sleep(max(0.0, warm_until - time.perf_counter()))
        r = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = r.ru_utime + r.ru_stime

    marker = asyncio.create_task(cpu_mark())
    await asyncio.gather(*(w.run(warm_until, end, lat, errors, total) for w in workers))
    await marker
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r.ru_utime + r.ru_stime - (cpu0 or 0.0)
    lat.sort()
    n = len(lat)

    def pct(p: float) -> float | None:
        return round(lat[min(n - 1, int(p * n))] * 1000, 3) if n else None

    return {"mix": a.mix, "via": "proxy" if a.proxy else "direct", "clients": a.clients, "duration_s": a.duration,
            "requests": n, "requests_total": total[0] + (4 if a.mix == "auth" else 0), "errors": errors[0], "rps": round(n / a.duration, 1), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "client_cpu_s": round(cpu, 3),
            "client_cpu_share": round(cpu / a.duration, 3)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--proxy", type=int, default=0)
    ap.add_argument("--mix", choices=sorted(MIX), default="ordinary")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=8.0)
    print(json.dumps(asyncio.run(main(ap.parse_args()))), flush=True)
