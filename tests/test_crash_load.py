"""Crash safety and load (issue 7, items 2 and 3), against a real `authtrace record` subprocess and a
plain-HTTP upstream on 127.0.0.1 (loopback only, bounded in time and count).

Crash: traffic keeps flowing while the proxy gets SIGKILL; every hop whose response completed
SETTLE_S before the kill is in the database, which passes `PRAGMA integrity_check` and opens again.

Load: CONNECTIONS concurrent keep-alive connections of mixed traffic (authorize, token, API calls,
static files, telemetry, a 64 KB download) for LOAD_SECONDS: every request is answered, every auth
request sent is a stored hop (no noise hop), and the proxy's resident memory in the second half of
the run does not outgrow the first half. The issue asks for 30 s; the suite runs LOAD_SECONDS = 12 to
stay fast, and `AUTHTRACE_LOAD_SECONDS=30` runs the issue's figure.
"""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlencode

import requests

from liverig import Recorder, Upstream

CLI = [sys.executable, "-m", "authtrace"]
SETTLE_S = 1.5  # a hop whose response completed this long before the kill must be stored
CONNECTIONS = 200
LOAD_SECONDS = float(os.environ.get("AUTHTRACE_LOAD_SECONDS") or 12)
BIG = b"x" * 65536


def answer(handler, body: bytes):
    """The upstream: what an IdP, an API and a web server would answer (plain HTTP, loopback)."""
    path = handler.path
    if path.startswith("/oauth2/v2.0/authorize"):
        return 200, [("Content-Type", "text/html")], b"<html><title>Sign in</title></html>"
    if path.startswith("/oauth2/v2.0/token"):
        return 200, [("Content-Type", "application/json")], json.dumps(
            {"token_type": "Bearer", "expires_in": 3599, "access_token": "opaque-at", "refresh_token": "rt"}).encode()
    if path.startswith("/api/"):
        return 200, [("Content-Type", "application/json")], b'{"ok": true}'
    if path.startswith("/download"):
        return 200, [("Content-Type", "application/octet-stream")], BIG
    return 200, [("Content-Type", "text/plain")], b"ok"


def auth_request(s: requests.Session, base: str, kind: str, rid: str, timeout: float = 30) -> requests.Response:
    if kind == "authorize":
        return s.get(f"{base}/oauth2/v2.0/authorize?" + urlencode(
            {"client_id": "c1", "response_type": "code", "state": rid, "redirect_uri": "http://app.test/cb",
             "rid": rid}), timeout=timeout)
    if kind == "token":
        return s.post(f"{base}/oauth2/v2.0/token?rid={rid}", data={
            "grant_type": "authorization_code", "code": f"code-{rid}", "client_id": "c1"}, timeout=timeout)
    return s.get(f"{base}/api/me?rid={rid}", headers={"Authorization": f"Bearer at-{rid}"}, timeout=timeout)


def noise_request(s: requests.Session, base: str, kind: str, timeout: float = 30) -> requests.Response:
    if kind == "static":
        return s.get(f"{base}/static/app.js", timeout=timeout)
    if kind == "telemetry":
        return s.post(f"{base}/telemetry", json={"event": "view", "n": 1}, timeout=timeout)
    return s.get(f"{base}/download", timeout=timeout)


def stored_rids(dbfile) -> list[str]:
    con = sqlite3.connect(dbfile)
    try:
        rows = con.execute("select url from hop").fetchall()
    finally:
        con.close()
    out = []
    for (url,) in rows:
        if "rid=" in url:
            out.append(url.split("rid=", 1)[1].split("&", 1)[0])
        else:
            out.append("<no rid> " + url)
    return out


def hop_count(dbfile) -> int:
    con = sqlite3.connect(dbfile)
    try:
        return con.execute("select count(*) from hop").fetchone()[0]
    finally:
        con.close()


def test_kill_9_during_capture_keeps_every_settled_hop(tmp_path):
    completed: list[tuple[str, float]] = []
    errors: list[str] = []
    dying, stop = threading.Event(), threading.Event()
    with Upstream(answer) as up, Recorder(tmp_path) as rec:
        base = f"http://127.0.0.1:{up.port}"

        def client(n: int) -> None:
            s = requests.Session()
            s.proxies = {"http": rec.proxy}
            i = 0
            while not stop.is_set():
                rid = f"k{n}-{i}"
                i += 1
                try:
                    auth_request(s, base, ("authorize", "token", "api")[i % 3], rid, timeout=5).raise_for_status()
                    completed.append((rid, time.monotonic()))
                    noise_request(s, base, "static", timeout=5)
                except requests.RequestException as e:
                    if not dying.is_set():
                        errors.append(repr(e))
                    s = requests.Session()
                    s.proxies = {"http": rec.proxy}
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(4.0)  # traffic keeps flowing up to the kill
        before = len(completed)
        dying.set()
        killed_at = time.monotonic()
        rec.kill9()
        stop.set()
        for t in threads:
            t.join(10)
    settled = {rid for rid, at in completed if at <= killed_at - SETTLE_S}
    assert len(settled) > 50 and before > len(settled), "the capture was busy when it was killed"
    assert not errors, errors[:3]

    con = sqlite3.connect(rec.db)
    try:
        assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()
    stored = set(stored_rids(rec.db))
    lost = sorted(settled - stored)
    assert not lost, f"{len(lost)} of {len(settled)} settled hops lost at kill -9: {lost[:10]}"
    print(f"\nkill -9: {len(completed)} auth requests answered, {before - len(settled)} of them within "
          f"{SETTLE_S}s of the kill; {len(settled)} settled, all stored ({len(stored)} hops in the database)")
    assert stat.S_IMODE(os.stat(rec.db).st_mode) == 0o600
    # opens cleanly afterwards: through the CLI, and by a new recording into the same file
    out = subprocess.run(CLI + ["sessions", "--db", str(rec.db)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "live" in out.stdout
    with Upstream(answer) as up, Recorder(tmp_path, rec.db) as again:
        s = requests.Session()
        s.proxies = {"http": again.proxy}
        auth_request(s, f"http://127.0.0.1:{up.port}", "token", "after-crash").raise_for_status()
        time.sleep(SETTLE_S)
        assert again.stop() == 0
    assert "after-crash" in stored_rids(rec.db)


def _sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def test_load_200_connections_no_stall_no_lost_hop_flat_memory(tmp_path):
    sent: Counter = Counter()
    answered: list[str] = []  # rids of auth requests that got their answer
    failures: list[str] = []
    latencies: list[float] = []
    rss: list[tuple[float, int]] = []
    lock = threading.Lock()
    go, stop = threading.Event(), threading.Event()
    mix = ["authorize", "static", "token", "telemetry", "api", "static", "download", "api"]
    with Upstream(answer) as up, Recorder(tmp_path) as rec:
        base = f"http://127.0.0.1:{up.port}"

        def client(n: int) -> None:
            s = requests.Session()
            s.proxies = {"http": rec.proxy}
            go.wait()
            i = n  # each connection starts at a different place in the mix
            while not stop.is_set():
                kind = mix[i % len(mix)]
                rid = f"L{n}-{i}"
                i += 1
                t = time.monotonic()
                try:
                    if kind in ("authorize", "token", "api"):
                        with lock:
                            sent[kind] += 1
                        r = auth_request(s, base, kind, rid)
                        r.raise_for_status()
                        with lock:
                            answered.append(rid)
                    else:
                        r = noise_request(s, base, kind)
                        r.raise_for_status()
                        assert kind != "download" or len(r.content) == len(BIG)
                except Exception as e:  # a stall or a broken answer: the test fails on any
                    with lock:
                        failures.append(f"{kind} {rid}: {e!r}")
                latencies.append(time.monotonic() - t)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CONNECTIONS)]
        for t in threads:
            t.start()
        start = time.monotonic()
        go.set()
        peak_sockets = 0
        while time.monotonic() - start < LOAD_SECONDS:
            rss.append((time.monotonic() - start, rec.rss_kb()))
            peak_sockets = max(peak_sockets, _sockets(rec.pid))
            time.sleep(0.25)
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a client never got its answer"
        # still responsive after the storm
        s = requests.Session()
        s.proxies = {"http": rec.proxy}
        t = time.monotonic()
        auth_request(s, base, "api", "after-load", timeout=10).raise_for_status()
        answered.append("after-load")
        assert time.monotonic() - t < 5
        deadline = time.monotonic() + 30
        while hop_count(rec.db) < len(answered) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert rec.stop() == 0

    total = sum(sent.values()) + 1
    assert not failures, f"{len(failures)} of {len(latencies)} requests failed: {failures[:5]}"
    assert len(answered) == total
    stored = stored_rids(rec.db)
    assert len(stored) == len(set(stored)), "a request became two hops"
    missing = set(answered) - set(stored)
    extra = set(stored) - set(answered)
    assert not missing, f"{len(missing)} of {total} auth hops lost under load: {sorted(missing)[:10]}"
    assert not extra, f"hops that are not auth requests: {sorted(extra)[:10]}"
    assert peak_sockets >= CONNECTIONS, f"only {peak_sockets} sockets open in the proxy"

    warm = [kb for t, kb in rss if t >= 2.0]
    half = len(warm) // 2
    first, second = max(warm[:half]), max(warm[half:])
    rate = len(latencies) / LOAD_SECONDS
    print(f"\nload: {CONNECTIONS} connections, {LOAD_SECONDS:.0f}s, {len(latencies)} requests ({rate:.0f}/s), "
          f"{total} auth hops stored, 0 lost; max latency {max(latencies):.2f}s; proxy RSS max "
          f"{first // 1024} MB first half, {second // 1024} MB second half; peak sockets {peak_sockets}")
    assert second <= first * 1.15 + 16 * 1024, f"proxy memory grew from {first} kB to {second} kB"
