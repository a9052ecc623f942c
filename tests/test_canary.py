"""Secrets canary (issue 7, item 4): ≥ 30 distinct secrets planted in every place a sign-in carries
them, through live capture (`authtrace record`, a real subprocess) and import (HAR, Chrome HAR,
.mitm): none reaches the database bytes (main file, -wal, -shm) or the terminal output.
The planted set comes from `canaries.canaries()`, so report tests can reuse it."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
from mitmproxy.io import FlowWriter

from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops

from builders import chrome_har, to_har
from canaries import canaries, distinct, leaks
from liverig import Recorder, Upstream, send
from schema import valid

CLI = [sys.executable, "-m", "authtrace"]
MIN_CANARIES = 30


def db_bytes(db: Path) -> bytes:
    files = sorted(db.parent.glob(db.name + "*"))
    assert files, f"no database at {db}"
    return b"".join(p.read_bytes() for p in files)


def expected_hops(flows) -> int:
    ctx = CaptureContext(b"\x07" * 32)
    return sum(len(flow_to_hops(f, ctx)) for f in flows)


def hop_count(db: Path, session: int | None = None) -> int:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        q = "select count(*) from hop" + (" where session_id = ?" if session else "")
        return con.execute(q, (session,) if session else ()).fetchone()[0]
    finally:
        con.close()


def test_canary_set_covers_every_place():
    secrets, flows = canaries()
    assert distinct(secrets) >= MIN_CANARIES
    assert len({v for _, v in secrets}) == len(secrets), "every planted value is distinct"
    names = " ".join(n for n, _ in secrets).lower()
    for place in ("query", "location fragment", "referer fragment", "referer query", "form", "json", "multipart",
                  "authorization", "aUtHoRiZaTiOn".lower(), "cookie", "set-cookie", "client_assertion",
                  "refresh_token", "code_verifier", "id_token_hint", "samlresponse", "passw", "client_secret",
                  "device_code", "basic", "dpop", "userinfo password"):
        assert place in names, place
    # every flow is an auth hop: a canary must not pass only because its flow was ignored
    ctx = CaptureContext(b"\x07" * 32)
    for f in flows:
        assert flow_to_hops(f, ctx), f"canary flow {f.request.method} {f.request.pretty_url[:80]} is not a hop"
    # the planted values really are in the flows
    raw = b"".join(bytes(f.request.url, "utf-8") + bytes(f.request.headers) + (f.request.raw_content or b"")
                   + (bytes(f.response.headers) + (f.response.raw_content or b"") if f.response else b"")
                   for f in flows)
    raw += b"".join(base64.b64decode(f.request.headers["authorization"].split()[1]) for f in flows
                    if f.request.headers.get("authorization", "").lower().startswith("basic "))
    missing = [n for n, v in secrets if not leaks(raw, [(n, v)])]
    assert not missing, f"planted but not in any flow: {missing}"


def test_imported_captures_keep_no_canary(tmp_path):
    secrets, flows = canaries()
    (tmp_path / "capture.har").write_bytes(orjson.dumps(to_har(flows)))
    (tmp_path / "chrome.har").write_text(json.dumps(chrome_har(flows)))
    with open(tmp_path / "flows.mitm", "wb") as fh:
        w = FlowWriter(fh)
        for f in flows:
            w.add(f)
    db = tmp_path / "imported.db"
    files = [str(tmp_path / n) for n in ("capture.har", "chrome.har", "flows.mitm")]
    imp = subprocess.run(CLI + ["import", *files, "--db", str(db)], capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0, imp.stderr
    ses = subprocess.run(CLI + ["sessions", "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert ses.returncode == 0, ses.stderr
    want = expected_hops(flows)
    assert [hop_count(db, s) for s in (1, 2, 3)] == [want] * 3, imp.stdout
    terminal = imp.stdout + imp.stderr + ses.stdout + ses.stderr
    assert leaks(terminal, secrets) == []
    assert leaks(db_bytes(db), secrets) == []
    # what is shared: the HTML timeline, the JSON, and `check`'s lines
    for sid in (1, 2, 3):
        html = tmp_path / f"r{sid}.html"
        rep = subprocess.run(CLI + ["report", str(sid), "--db", str(db), "-o", str(html)], capture_output=True,
                             text=True, timeout=120)
        assert rep.returncode == 0, rep.stderr
        js = subprocess.run(CLI + ["report", str(sid), "--db", str(db), "--json"], capture_output=True, text=True,
                            timeout=120)
        assert js.returncode == 0 and valid(json.loads(js.stdout))["hops"] == want
        assert leaks(html.read_text() + rep.stdout + rep.stderr + js.stdout + js.stderr, secrets) == []
    chk = subprocess.run(CLI + ["check", *files, "--json"], capture_output=True, text=True, timeout=120)
    assert chk.returncode in (0, 1), chk.stderr
    assert leaks(chk.stdout + chk.stderr, secrets) == []


class Replay:
    """The upstream answers each canary request with its flow's recorded response."""

    def __init__(self, flows):
        self.flows = flows

    def __call__(self, handler, body):
        f = self.flows[int(handler.headers["x-canary"])]
        r = f.response
        return r.status_code, list(r.headers.items(multi=True)), r.raw_content or b""


def test_live_capture_keeps_no_canary(tmp_path):
    secrets, flows = canaries()
    with Upstream(Replay(flows)) as up, Recorder(tmp_path) as rec:
        for i, f in enumerate(flows):
            rq = f.request
            headers = [(k, v) for k, v in rq.headers.items(multi=True)] + [("x-canary", str(i))]
            status, _ = send(rec.port, up.port, rq.method, rq.pretty_host, rq.path, headers, rq.raw_content or b"")
            assert status == f.response.status_code
        want = expected_hops(flows)
        deadline = time.monotonic() + 15
        while hop_count(rec.db) < want and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rec.stop() == 0
        out = rec.output()
    assert hop_count(rec.db) == want, out
    assert "recording session" in out and "code#" in out  # the terminal did show the hops
    assert leaks(out, secrets) == []
    assert leaks(db_bytes(rec.db), secrets) == []
