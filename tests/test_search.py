"""Search across captures, on SQLite and PostgreSQL: `sessions` filters (host, client_id, tenant,
finding kind, time range, free text) from the facet index; `find` lists every hop where a code or
token appears, across captures; `prune` and `delete` say what they removed; a PostgreSQL URL
without its driver, or a server that is not there, gets one sentence."""
import json
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops
from authtrace.addons.secrets import SECRET_NAMES, Fingerprinter
from authtrace.reports.diagnose import analyse
from authtrace.store import db, models, search
from authtrace.store.search import SessionFilter

from builders import CLIENT_ID, IDP, TENANT, signin_flows

CLI = [sys.executable, "-m", "authtrace"]
DAY = 86400.0
SHARED_CODE = "0.AXoA-the-same-code-in-two-captures"


def cli(*args, stdin=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=120, input=stdin)


def _store(engine, name, flows, client_id=None):
    ctx = CaptureContext(db.fingerprint_key(engine))
    hops = [h for f in flows for h in flow_to_hops(f, ctx)]
    if client_id:
        for h in hops:
            if h.client_id:
                h.client_id = client_id
    sid = db.new_session(engine, name, f"/captures/{name}", "har")
    db.write_hops(engine, sid, hops)
    db.update_session(engine, sid, flows_seen=len(flows))
    analyse(engine, db.load_session(engine, sid))
    return sid, hops


@pytest.fixture
def three(store):
    """acme (an hour ago), globex (ten days ago, another client, the same code as acme), and a
    later capture that only calls the API with acme's access token."""
    now = time.time()
    acme_flows = signin_flows(now - 3600, code=SHARED_CODE)
    acme, acme_hops = _store(store, "acme.har", acme_flows)
    globex, _ = _store(store, "globex.har", signin_flows(now - 10 * DAY, code=SHARED_CODE), client_id="globex-app")
    late_api = acme_flows[-1].copy()
    for m in (late_api.request, late_api.response):
        m.timestamp_start += 2 * 3600
        m.timestamp_end += 2 * 3600
    later, _ = _store(store, "later.har", [late_api])
    token = next(t for h in acme_hops for t in h.tokens if t.kind == "access_token" and not t.presented)
    code_fp = next(h.code_fp for h in acme_hops if h.code_fp)
    return store, {"acme": acme, "globex": globex, "later": later, "token": token.fingerprint, "code": code_fp}


def ids(engine, **kw):
    return [s.id for s in db.sessions(engine, SessionFilter(**kw))]


def test_sessions_filters(three):
    engine, s = three
    acme, globex, later = s["acme"], s["globex"], s["later"]
    assert ids(engine) == [acme, globex, later]
    assert ids(engine, host=IDP) == [acme, globex]
    assert ids(engine, host="*.AI.azure.com") == [acme, globex, later]  # wildcard, any case
    assert ids(engine, host="contoso-ai.*") == [acme, globex, later]
    assert ids(engine, host="nowhere.test") == []
    assert ids(engine, client_id=CLIENT_ID) == [acme]
    assert ids(engine, client_id="globex-app") == [globex]
    assert ids(engine, tenant=TENANT.upper()) == [acme, globex, later]  # a token's tid counts too
    assert ids(engine, since=time.time() - 7 * DAY) == [acme, later]
    assert ids(engine, until=time.time() - 7 * DAY) == [globex]
    assert ids(engine, text="globex") == [globex]
    assert ids(engine, text="contoso-ai") == [acme, globex, later]  # a host
    assert ids(engine, text="100%_") == []  # LIKE's own wildcards are plain text
    assert ids(engine, host=IDP, client_id="globex-app", since=time.time() - 7 * DAY) == []
    assert db.count_sessions(engine, SessionFilter(host=IDP)) == 2
    assert [x.id for x in db.sessions(engine, limit=2)] == [globex, later]  # the newest two, oldest first


def test_sessions_filter_by_finding_kind_and_counts_from_sql(three):
    engine, s = three
    kinds = {f.kind for f in analyse(engine, db.load_session(engine, s["later"])).findings}
    assert kinds, "the lone API call has a finding to filter by"
    kind = sorted(kinds)[0]
    assert s["later"] in ids(engine, finding=kind)
    assert ids(engine, finding="no_such_kind") == []
    roles = db.role_counts(engine, [s["acme"], s["later"]])
    assert roles[s["later"]] == {"api": 1}
    assert sum(roles[s["acme"]].values()) == db.load_session(engine, s["acme"]).hops
    assert set(db.finding_counts(engine, [s["later"]])) <= {s["later"]}


def test_find_a_code_in_two_captures_and_a_token_after_its_sign_in(three):
    engine, s = three
    seen = search.find(engine, search.digest_of(s["code"]))
    assert {x.session_id for x in seen} == {s["acme"], s["globex"]}
    assert all(x.role in ("login", "callback", "token", "authorize") for x in seen)
    acme_loaded = {h.id: h.number for h in db.load_hops(engine, s["acme"])}
    for x in seen:
        if x.session_id == s["acme"]:
            assert x.number == acme_loaded[x.hop_id]  # the numbers every report prints
    tok = search.find(engine, search.digest_of(s["token"]))
    assert [(x.session_id, x.role) for x in tok][-1] == (s["later"], "api")
    assert tok[0].session_id == s["acme"] and tok[0].place == "response.access_token"
    assert [x.started for x in tok] == sorted(x.started for x in tok)


def test_fingerprint_pattern_is_the_one_secrets_writes():
    fpr = Fingerprinter(b"k" * 32)
    for label in SECRET_NAMES | {"jwt", "cookie", "bearer", "state", "value"}:
        fp = fpr.fp("some secret value", label)
        m = search.FINGERPRINT_RE.fullmatch(fp)
        assert m and search.digest_of(fp) == m.group(2) == fp.split("#")[1], fp
    assert search.digest_of("0123456789") == "0123456789"
    assert search.digest_of("not a fingerprint") is None


def test_cli_sessions_find_prune_delete(three, store_url):
    engine, s = three
    out = cli("sessions", "--db", store_url, "--client-id", "globex-app")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and "globex.har" in lines[1]
    out = cli("sessions", "--db", store_url, "--host", "*.microsoftonline.com", "--since", "30d", "--json")
    assert [x["id"] for x in json.loads(out.stdout)] == [s["acme"], s["globex"]]
    out = cli("sessions", "--db", store_url, "--since", "yesterday-ish")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "7d" in out.stderr
    out = cli("sessions", "--db", store_url, "--text", "no such thing anywhere")
    assert out.stdout.strip() == "no capture session matches"

    out = cli("find", s["code"], "--db", store_url)
    assert out.returncode == 0, out.stderr
    assert "in 2 session(s)" in out.stdout and "appears in 2 captures" in out.stdout
    assert "acme.har" in out.stdout and "globex.har" in out.stdout
    raw = cli("find", "-", "--db", store_url, stdin=SHARED_CODE + "\n")  # the raw value, read from stdin
    assert raw.stdout.splitlines()[1:] == out.stdout.splitlines()[1:]
    assert SHARED_CODE not in raw.stdout
    out = cli("find", "#!nonsense", "--db", store_url)
    assert out.returncode == 2 and "is no fingerprint" in out.stderr

    out = cli("prune", "--older-than", "7d", "--db", store_url, "--dry-run")
    assert "would delete 1 session(s)" in out.stdout and "globex.har" in out.stdout
    assert ids(engine) == [s["acme"], s["globex"], s["later"]]
    out = cli("prune", "--older-than", "7d", "--db", store_url)
    assert out.returncode == 0, out.stderr
    assert "deleted 1 session(s) older than 7d:" in out.stdout and " hops, " in out.stdout
    assert ids(engine) == [s["acme"], s["later"]]
    assert {x.session_id for x in search.find(engine, search.digest_of(s["code"]))} == {s["acme"]}
    out = cli("prune", "--older-than", "soon", "--db", store_url)
    assert out.returncode == 2 and "no length of time" in out.stderr

    out = cli("delete", str(s["later"]), "999", "--db", store_url)
    assert out.returncode == 2 and "no capture session 999" in out.stderr and "nothing deleted" in out.stderr
    assert ids(engine) == [s["acme"], s["later"]]
    out = cli("delete", str(s["later"]), "--db", store_url)
    assert out.returncode == 0 and "deleted 1 session(s): 1 hops," in out.stdout
    assert ids(engine) == [s["acme"]]
    with engine.connect() as conn:
        for table in (models.Hop, models.Token, models.Finding, models.Sighting, models.Facet):
            n = conn.execute(sa.select(sa.func.count()).select_from(table)
                             .where(table.session_id != s["acme"])).scalar_one()
            assert n == 0, table.__tablename__


def test_postgres_url_without_its_driver_is_one_sentence(tmp_path):
    code = ("import sys; sys.modules['psycopg'] = None; from authtrace.main import main; "
            "sys.exit(main(['sessions', '--db', 'postgresql://support:s3cret@127.0.0.1:1/authtrace']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "authtrace: postgresql://support:***@127.0.0.1:1/authtrace is a PostgreSQL store, which needs the "
        "psycopg driver: pip install 'authtrace[postgres]'."]


def test_unreachable_postgres_is_one_sentence_without_the_password():
    out = cli("sessions", "--db", "postgresql://support:s3cret@127.0.0.1:1/authtrace")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "s3cret" not in out.stderr
    assert "cannot use postgresql://support:***@127.0.0.1:1/authtrace as an authtrace store" in out.stderr


def test_find_numbers_hops_as_reports_do_when_many_hops_of_a_session_match(store):
    """A token on twenty API calls, stored out of time order: find gives each hop the number that
    `load_hops` (and every report) gives it, by either way of counting."""
    api = signin_flows(time.time() - 600)[-1]
    calls = []
    for i in (5, 1, 19, 0, 7, 3, 12, 2, 18, 4, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17):
        c = api.copy()
        for m in (c.request, c.response):
            m.timestamp_start += i
            m.timestamp_end += i
        calls.append(c)
    for few in (False, True):
        sid, hops = _store(store, f"calls-{few}", calls[:3] if few else calls)
        token = hops[0].tokens[0].fingerprint
        numbers = {h.id: h.number for h in db.load_hops(store, sid)}
        seen = [x for x in search.find(store, search.digest_of(token)) if x.session_id == sid]
        assert len(seen) == (3 if few else 20)
        assert [x.number for x in seen] == sorted(numbers[x.hop_id] for x in seen)
        assert all(x.number == numbers[x.hop_id] for x in seen)


def test_delete_many_sessions_counts_every_row(store):
    """Deleted a few sessions per transaction; the totals still count every row removed."""
    api = signin_flows(time.time() - 600)[-1]
    made = [_store(store, f"s{i}", [api])[0] for i in range(25)]
    keep = made.pop(3)
    removed = db.delete_sessions(store, made)
    assert removed["capturesession"] == 24 and removed["hop"] == 24 and removed["token"] == 24
    assert removed["facet"] >= 24 * 2 and removed["sighting"] >= 24
    assert [s.id for s in db.sessions(store)] == [keep]
    assert db.delete_sessions(store, []) == dict.fromkeys(removed, 0)
