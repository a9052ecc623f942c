"""Schema versions, on SQLite and PostgreSQL: a new store is stamped; round 1's store (no version,
catch-all JSON columns) is refused with the sentence naming `authtrace db upgrade`, then converted
with its data; round 2's store (no version, records schema) is upgraded when opened; a newer store
is refused; many processes creating one store at once create it once. After every upgrade the
tables are exactly what models.py defines (Alembic's own comparison)."""
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from authtrace.reports.diagnose import analyse
from authtrace.reports.html import render_html
from authtrace.store import db, migrate, models, search
from authtrace.store.records import Role

CLI = [sys.executable, "-m", "authtrace"]
KEY = "ab" * 32


# ---- frozen copies of the schemas before versions ------------------------------------------------

def old_metadata(round_: int) -> sa.MetaData:
    """The tables as round 1 (git b3377e5, store/models.py) or round 2 (records, before issue 14)
    created them with SQLModel: frozen here, as a migration test must keep them."""
    md = sa.MetaData()
    S, F, N, B, J = AutoString, sa.Float, sa.Integer, sa.Boolean, sa.JSON
    sa.Table("meta", md, sa.Column("key", S, primary_key=True), sa.Column("value", S, nullable=False))
    sa.Table("capturesession", md, sa.Column("id", N, primary_key=True), sa.Column("name", S, nullable=False),
             sa.Column("source", S, nullable=False), sa.Column("kind", S, nullable=False),
             sa.Column("created", F, nullable=False), sa.Column("first_seen", F), sa.Column("last_seen", F),
             sa.Column("flows_seen", N, nullable=False), sa.Column("hops", N, nullable=False),
             sa.Column("problem", S))
    common = [sa.Column("id", N, primary_key=True),
              sa.Column("session_id", N, sa.ForeignKey("capturesession.id"), nullable=False, index=True)]
    if round_ == 1:
        common.append(sa.Column("seq", N, nullable=False))
    common += [sa.Column("started", F, nullable=False), sa.Column("duration_ms", F),
               sa.Column("role", S, nullable=False, index=True), sa.Column("method", S, nullable=False),
               sa.Column("url", S, nullable=False), sa.Column("host", S, nullable=False),
               sa.Column("path", S, nullable=False), sa.Column("status", N), sa.Column("is_error", B, nullable=False),
               sa.Column("actor", S, nullable=False), sa.Column("user_agent", S),
               sa.Column("code_fp", S, index=True), sa.Column("state", S), sa.Column("nonce", S),
               sa.Column("client_id", S)]
    if round_ == 1:
        common += [sa.Column(n, J) for n in ("initiator", "params", "response", "state_decoded", "error",
                                             "headers", "cookies")]
        common += [sa.Column("body_excerpt", S), sa.Column("note", S)]
    else:
        common += [sa.Column("from_fragment", B, nullable=False)]
        common += [sa.Column(n, J) for n in ("initiator", "params", "answer", "state_info", "error",
                                             "request_headers", "response_headers", "cookies_sent",
                                             "cookies_set")]
        common += [sa.Column("body_excerpt", S)]
    sa.Table("hop", md, *common)
    sa.Table("token", md, sa.Column("id", N, primary_key=True),
             sa.Column("session_id", N, sa.ForeignKey("capturesession.id"), nullable=False, index=True),
             sa.Column("hop_id", N, sa.ForeignKey("hop.id"), nullable=False, index=True),
             sa.Column("where", S, nullable=False), sa.Column("kind", S, nullable=False),
             sa.Column("fingerprint", S, nullable=False, index=True), sa.Column("format", S, nullable=False),
             sa.Column("header", J), sa.Column("claims", J), sa.Column("signature", S, nullable=False))
    sa.Table("finding", md, sa.Column("id", N, primary_key=True),
             sa.Column("session_id", N, sa.ForeignKey("capturesession.id"), nullable=False, index=True),
             sa.Column("kind", S, nullable=False, index=(round_ == 2)), sa.Column("severity", S, nullable=False),
             sa.Column("title", S, nullable=False), sa.Column("explanation", S, nullable=False),
             sa.Column("causes", J), sa.Column("next_step", S, nullable=False), sa.Column("evidence", J),
             sa.Column("details", J))
    return md


CODE = "code#0123456789"
T0 = 1_764_000_000.0


def round1_hops() -> list[dict]:
    """Hops as round 1's hop builder wrote them (addons/hops.py at b3377e5): a sign-in whose code is
    redeemed twice, the second time refused, and a callback made from a Location fragment."""
    base = dict(duration_ms=12.0, actor="browser", user_agent="Mozilla/5.0", state=None, nonce=None, client_id="app-1",
                initiator={"site": "cross-site", "mode": "navigate"}, params=None, response=None, state_decoded=None,
                error=None, headers={"request": {"accept": "text/html"}}, cookies=None, body_excerpt=None, note=None,
                code_fp=None, status=200, is_error=False)
    return [
        dict(base, seq=1, started=T0, role="authorize", method="GET", host="login.microsoftonline.com",
             path="/tenant-a/oauth2/v2.0/authorize", url="https://login.microsoftonline.com/tenant-a/oauth2/v2.0/"
             "authorize?client_id=app-1&state=st-1", params={"query": {"client_id": "app-1", "state": "st-1"}},
             state="st-1", state_decoded={"format": "opaque", "length": 4}, status=302, code_fp=CODE,
             response={"location": f"https://app.test/callback?code={CODE}&state=st-1", "issued_code": CODE},
             headers={"request": {"accept": "text/html"}, "response": {"location": "https://app.test/callback"}},
             cookies={"sent": {"esctx": "cookie#aaaaaaaaaa"}, "set": ["buid", "fpc"]}),
        dict(base, seq=2, started=T0 + 1, role="callback", method="GET", host="app.test", path="/callback",
             url=f"https://app.test/callback?code={CODE}&state=st-1", code_fp=CODE, state="st-1",
             params={"query": {"code": CODE, "state": "st-1"}}),
        dict(base, seq=3, started=T0 + 2, role="token", method="POST", host="login.microsoftonline.com",
             path="/tenant-a/oauth2/v2.0/token", url="https://login.microsoftonline.com/tenant-a/oauth2/v2.0/token",
             actor="app", code_fp=CODE, params={"form": {"code": CODE, "grant_type": "authorization_code"}},
             response={"fields": {"token_type": "Bearer", "expires_in": 3600, "access_token": "access_token#bbbbbbbbbb"}}),
        dict(base, seq=4, started=T0 + 3, role="token", method="POST", host="login.microsoftonline.com",
             path="/tenant-a/oauth2/v2.0/token", url="https://login.microsoftonline.com/tenant-a/oauth2/v2.0/token",
             actor="app", code_fp=CODE, status=400, is_error=True,
             params={"form": {"code": CODE, "grant_type": "authorization_code"}},
             error={"error": "invalid_grant", "error_description": "AADSTS54005: OAuth2 Authorization code was "
                    "already redeemed.", "error_codes": [54005], "claims": "{\"x\":1}", "error_subcode": 7},
             body_excerpt="{\"error\":\"invalid_grant\"}"),
        dict(base, seq=5, started=T0 + 4, role="callback", method="GET", host="spa.test", path="/",
             url="https://spa.test/#state=st-2", status=None, params={"fragment": {"state": "st-2"}},
             note="delivered in the fragment of the Location header of hop #4; browsers never send fragments, "
                  "so this is the callback as the page received it"),
    ]


def build_old_store(url: str, round_: int) -> None:
    """A store as that round's code left it: its tables, a session, hops, a token and the key."""
    engine = sa.create_engine(db.url_for(url))
    md = old_metadata(round_)
    md.create_all(engine)
    hops = round1_hops()
    if round_ == 2:
        from authtrace.store.migrations.versions.r0001_records import convert

        class Row:
            def __init__(self, d, i):
                self.__dict__.update(d, id=i)

        hops = [{**{k: v for k, v in h.items() if k not in ("seq", "response", "state_decoded", "headers",
                                                              "cookies", "note")},
                 **{k: v for k, v in convert(Row(h, i)).items() if k != "b_id"}} for i, h in enumerate(hops, 1)]
    with engine.begin() as conn:
        conn.execute(md.tables["meta"].insert(), [{"key": "fingerprint_key", "value": KEY}])
        conn.execute(md.tables["capturesession"].insert(), [{
            "id": 1, "name": "old.har", "source": "/captures/old.har", "kind": "har", "created": T0,
            "first_seen": T0, "last_seen": T0 + 4, "flows_seen": 9, "hops": 5, "problem": None}])
        conn.execute(md.tables["hop"].insert(), [dict(h, id=i, session_id=1) for i, h in enumerate(hops, 1)])
        conn.execute(md.tables["token"].insert(), [{
            "session_id": 1, "hop_id": 3, "where": "response.access_token", "kind": "access_token",
            "fingerprint": "access_token#bbbbbbbbbb", "format": "jwt", "header": {"alg": "RS256"},
            "claims": {"aud": "api://x", "tid": "tenant-a"}, "signature": "unknown"}])
        if engine.dialect.name == "postgresql":  # ids given explicitly: move the sequences past them
            for t in ("capturesession", "hop", "token"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), 100)"))
    engine.dispose()


def schema_diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)


# ---- tests ----------------------------------------------------------------------------------------

def test_new_store_is_stamped_and_matches_the_models(store):
    with store.connect() as conn:
        assert migrate.state(conn) == migrate.head()
    assert schema_diff(store) == []


def test_round1_store_is_refused_then_converted_with_its_data(store_url):
    build_old_store(store_url, 1)
    with pytest.raises(db.DatabaseError) as e:
        db.open_db(store_url)
    msg = str(e.value)
    assert "authtrace db upgrade" in msg and "round 1" in msg and len(msg.splitlines()) == 1
    with pytest.raises(db.DatabaseError, match="authtrace db upgrade"):
        db.open_db(store_url, readonly=True)

    out = subprocess.run(CLI + ["db", "upgrade", "--db", store_url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"at schema {migrate.head()}" in out.stdout and "upgraded" in out.stderr

    engine = db.open_db(store_url)
    assert schema_diff(engine) == []
    assert db.fingerprint_key(engine).hex() == KEY  # the store keeps its key: old fingerprints still match
    hops = db.load_hops(engine, 1)
    assert [h.role for h in hops] == [Role.AUTHORIZE, Role.CALLBACK, Role.TOKEN, Role.TOKEN, Role.CALLBACK]
    authz, _, first, second, frag = hops
    assert authz.answer.issued_code == CODE and authz.answer.location.startswith("https://app.test/callback")
    assert authz.request_headers == {"accept": "text/html"}
    assert authz.response_headers == {"location": "https://app.test/callback"}
    assert authz.cookies_sent == {"esctx": "cookie#aaaaaaaaaa"} and authz.cookies_set == ("buid", "fpc")
    assert authz.state_info.format == "opaque"
    assert first.answer.fields["access_token"] == "access_token#bbbbbbbbbb" and first.tokens[0].aud == ("api://x",)
    assert second.error.error == "invalid_grant" and second.error.error_codes == (54005,)
    assert second.error.extra == {"claims": "{\"x\":1}", "error_subcode": "7"}
    assert frag.from_fragment and not authz.from_fragment
    # it reports, and the new index knows the old hops
    a = analyse(engine, db.load_session(engine, 1))
    assert "reused_code" in {f.kind for f in a.findings}
    assert "AADSTS54005" in render_html(a)
    assert [x.number for x in search.find(engine, "0123456789")] == [1, 2, 3, 4]
    assert db.role_counts(engine, [1]) == {1: {"authorize": 1, "callback": 2, "token": 2}}
    assert [s.id for s in db.sessions(engine, search.SessionFilter(tenant="tenant-a"))] == [1]
    # and takes new captures
    sid = db.new_session(engine, "new", "/new", "har")
    assert sid > 1
    engine.dispose()


def test_round2_store_is_upgraded_when_opened(store_url, capfd):
    build_old_store(store_url, 2)
    engine = db.open_db(store_url)
    assert "upgraded" in capfd.readouterr().err
    assert schema_diff(engine) == []
    with engine.connect() as conn:
        assert migrate.state(conn) == migrate.head()
    hops = db.load_hops(engine, 1)
    assert len(hops) == 5 and hops[4].from_fragment and hops[0].cookies_set == ("buid", "fpc")
    assert {x.session_id for x in search.find(engine, "0123456789")} == {1}
    assert [s.id for s in db.sessions(engine, search.SessionFilter(host="*.microsoftonline.com"))] == [1]
    assert db.role_counts(engine)[1]["token"] == 2
    engine.dispose()


def test_store_from_a_newer_authtrace_is_refused(store_url):
    db.open_db(store_url).dispose()
    engine = sa.create_engine(db.url_for(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(db.DatabaseError, match="made by a newer authtrace.*upgrade authtrace"):
        db.open_db(store_url)


def test_readonly_open_of_an_empty_database_changes_nothing(store_url):
    if "://" not in store_url:
        with pytest.raises(db.DatabaseError, match="no store at"):
            db.open_db(store_url, readonly=True)
        return
    with pytest.raises(db.DatabaseError, match="holds no authtrace store yet"):
        db.open_db(store_url, readonly=True)
    engine = sa.create_engine(db.url_for(store_url))
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()


def test_readonly_store_refuses_writes_in_the_database(store_url):
    db.open_db(store_url).dispose()
    engine = db.open_db(store_url, readonly=True)
    with pytest.raises(sa.exc.DBAPIError):
        db.new_session(engine, "x", "x", "har")
    engine.dispose()


def test_many_openers_of_a_new_store_create_it_once(store_url):
    """Eight engines (own connections, as eight processes would have) open one empty store at the
    same moment: no 'already exists', no unique violation, one fingerprint key for all."""
    barrier = threading.Barrier(8)
    keys, errors = [], []

    def opener():
        try:
            barrier.wait()
            e = db.open_db(store_url)
            keys.append(db.fingerprint_key(e))
            e.dispose()
        except Exception as ex:
            errors.append(ex)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(keys) == 8 and len(set(keys)) == 1
    engine = sa.create_engine(db.url_for(store_url))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(models.Meta)).scalar_one() == 1
    engine.dispose()


def test_head_constant_is_alembics_head():
    """`migrate` reads the store's version without importing Alembic; its HEAD must be the revisions' head."""
    assert migrate._script().get_current_head() == migrate.head()
