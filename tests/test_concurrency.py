"""Many writers into one new store at once, on SQLite and PostgreSQL: four `authtrace import` and two
`authtrace record` processes start together on an empty store (so they also race to create its
schema and its fingerprint key). Every hop is stored once, each capture is its own session, the
store has one key (the same code in files imported by two processes has one fingerprint), and each
recorder prints the live findings of its own session, also with a database URL."""
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from urllib.parse import parse_qs, urlencode, urlsplit

import sqlalchemy as sa

from authtrace.addons.importers import import_file
from authtrace.store import db, models, search

from builders import signin_flows, to_har
from liverig import Recorder, Upstream, send

SIGNINS_PER_FILE = 12
FILES = 8  # two per import process
SHARED = "0.AXoA-one-code-two-files-two-processes"


def make_hars(tmp_path) -> list[str]:
    paths = []
    t0 = time.time() - 7200
    for i in range(FILES):
        flows = []
        for j in range(SIGNINS_PER_FILE):
            code = SHARED if (i in (0, 7) and j == 0) else f"0.AXoA-code-file{i}-signin{j}"
            flows += signin_flows(t0 + i * 100 + j * 6, code=code)
        p = tmp_path / f"capture-{i}.har"
        p.write_text(json.dumps(to_har(flows)))
        paths.append(str(p))
    return paths


def idp(handler, body):
    """An authorization server: authorize redirects with a code; token redeems each code once."""
    url = urlsplit(handler.path)
    if url.path == "/authorize":
        q = parse_qs(url.query)
        return 302, [("Location", f"http://app.test/callback?code=C-{q['state'][0]}&state={q['state'][0]}")], b""
    if url.path == "/token":
        code = parse_qs(body.decode())["code"][0]
        with handler.server.lock:
            again = code in handler.server.redeemed
            handler.server.redeemed.add(code)
        if again:
            return 400, [("Content-Type", "application/json")], json.dumps(
                {"error": "invalid_grant", "error_description": "code already redeemed"}).encode()
        return 200, [("Content-Type", "application/json")], json.dumps(
            {"access_token": f"opaque-{code}", "token_type": "Bearer", "expires_in": 3600}).encode()
    return 200, [("Content-Type", "text/html")], b"<html>ok</html>"


def drive(rec: Recorder, up: Upstream, tag: str, signins: int) -> int:
    """Sign-ins through one recorder (the last code redeemed twice); returns the auth requests sent.
    Each sign-in is another client's, so that quick succession is no redirect loop."""
    sent = 0
    for n in range(signins):
        state = f"{tag}-{n}"
        q = urlencode({"client_id": f"client-{tag}-{n}", "response_type": "code", "state": state,
                       "redirect_uri": "http://app.test/callback"})
        send(rec.port, up.port, "GET", "idp.test", f"/authorize?{q}", [("User-Agent", "Mozilla/5.0")])
        send(rec.port, up.port, "GET", "app.test", f"/callback?code=C-{state}&state={state}",
             [("User-Agent", "Mozilla/5.0")])
        form = urlencode({"grant_type": "authorization_code", "code": f"C-{state}", "client_id": f"client-{tag}-{n}"})
        for _ in range(2 if n == signins - 1 else 1):
            send(rec.port, up.port, "POST", "idp.test", "/token",
                 [("Content-Type", "application/x-www-form-urlencoded")], form.encode())
            sent += 1
        send(rec.port, up.port, "GET", "app.test", "/static/app.css", [])  # noise: no hop
        sent += 2
    return sent


def test_four_importers_and_two_recorders_into_one_new_store(tmp_path, store_url):
    hars = make_hars(tmp_path)
    # what each file gives alone, in a private store: the reference
    ref_engine = db.open_db(str(tmp_path / "reference.db"))
    expected = {}
    for p in hars:
        res = import_file(ref_engine, p)
        expected[p.rsplit("/", 1)[1]] = Counter(h.role.value for h in db.load_hops(ref_engine, res.session_id))
    ref_engine.dispose()

    imports = [subprocess.Popen([sys.executable, "-m", "authtrace", "import", *hars[2 * k:2 * k + 2], "--db",
                                 store_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k in range(4)]
    with Upstream(idp) as up:
        up.lock, up.redeemed = threading.Lock(), set()
        with _recorder(tmp_path, "r1", store_url) as r1, \
                _recorder(tmp_path, "r2", store_url) as r2:
            counts = {}
            threads = [threading.Thread(target=lambda r=r, t=t: counts.__setitem__(t, drive(r, up, t, 8)))
                       for r, t in ((r1, "one"), (r2, "two"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            results = [p.communicate(timeout=300) + (p.returncode,) for p in imports]
            for r in (r1, r2):  # each recorder prints its own session's finding, read from the URL store
                deadline = time.monotonic() + 60
                while "reused_code" not in r.output() and time.monotonic() < deadline:
                    time.sleep(0.5)
            for r in (r1, r2):
                assert r.stop() == 0, r.output()
            outputs = {"one": r1.output(), "two": r2.output()}

    for _out, err, rc in results:
        assert rc == 0, err
    engine = db.open_db(store_url)
    sessions = db.sessions(engine)
    assert len({s.id for s in sessions}) == len(sessions) == FILES + 2
    imported = {s.name: s for s in sessions if s.kind == "har"}
    assert set(imported) == set(expected)  # each file exactly once
    for name, s in imported.items():
        hops = db.load_hops(engine, s.id)
        assert Counter(h.role.value for h in hops) == expected[name], name
        assert s.hops == len(hops)
    live = [s for s in sessions if s.kind == "live"]
    for s in live:
        hops = db.load_hops(engine, s.id)
        tag = "one" if hops[0].client_id.startswith("client-one-") else "two"
        assert len(hops) == counts[tag]
        assert all(h.client_id.startswith(f"client-{tag}-") for h in hops if h.client_id)
        assert s.flows_seen == counts[tag] + 8  # the noise is counted, not stored
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(models.Hop)).scalar_one()
        distinct = conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(models.Hop.session_id, models.Hop.started, models.Hop.url, models.Hop.method).distinct()
            .subquery())).scalar_one()
        keys = conn.execute(sa.select(sa.func.count()).select_from(models.Meta)
                            .where(models.Meta.key == "fingerprint_key")).scalar_one()
    assert total == distinct == sum(s.hops for s in sessions)
    assert keys == 1
    # the shared code, imported by two different processes, has one fingerprint
    shared_fp = {h.code_fp for s in (imported["capture-0.har"], imported["capture-7.har"])
                 for h in db.load_hops(engine, s.id)[:6] if h.code_fp}
    assert len(shared_fp) == 1
    found = {x.session_id for x in search.find(engine, search.digest_of(shared_fp.pop()))}
    assert found == {imported["capture-0.har"].id, imported["capture-7.har"].id}
    for out in outputs.values():
        assert out.count("FINDING ERROR   reused_code") == 1, out
        assert "redirect_loop" not in out, out
    engine.dispose()


def _recorder(tmp_path, name, store_url):
    d = tmp_path / name
    d.mkdir()
    return Recorder(d, store_url)
