"""The store keeps records as they were: tables in step with the records, JSON columns round-trip,
and a store written by another version still loads; on SQLite and PostgreSQL."""
import dataclasses

import sqlalchemy as sa

from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops
from authtrace.store import db, models
from authtrace.store.records import ErrorAnswer, Hop, Params, Role, Token, from_json, to_json

from builders import signin_flows


def test_tables_hold_every_field_of_the_records():
    """One definition per record: a field added to Hop or Token without a column (or the reverse)
    fails here, not silently in a user's store."""
    hop_fields = {f.name for f in dataclasses.fields(Hop)} - {"tokens", "number"}
    assert {c.name for c in models.Hop.__table__.columns} == hop_fields | {"session_id"}
    token_fields = {f.name for f in dataclasses.fields(Token) if f.init}
    assert {c.name for c in models.Token.__table__.columns} == token_fields | {"id", "session_id", "hop_id"}


def test_hops_round_trip_through_the_store(store):
    engine = store
    ctx = CaptureContext(db.fingerprint_key(engine))
    hops = [h for f in signin_flows() for h in flow_to_hops(f, ctx)]
    sid = db.new_session(engine, "s", "/s", "har")
    db.write_hops(engine, sid, hops)
    loaded = db.load_hops(engine, sid)
    assert [h.number for h in loaded] == list(range(1, len(hops) + 1))
    for a, b in zip(hops, loaded, strict=True):
        a.number = b.number
        assert to_json(a) == to_json(b)
        assert [to_json(t) for t in a.tokens] == [to_json(t) for t in b.tokens]
    assert loaded[3].tokens[0].aud or loaded[3].tokens[1].aud  # typed claims are made again on load


def test_a_store_from_another_version_still_loads(store):
    engine = store
    """Unknown keys are ignored, wrongly typed values dropped: the hop is kept."""
    sid = db.new_session(engine, "old", "/old", "har")
    with engine.begin() as conn:
        conn.execute(sa.insert(models.Hop), [{
            "session_id": sid, "started": 1.0, "role": "callback", "method": "GET", "url": "u", "host": "h",
            "path": "/", "actor": "browser", "params": {"query": {"code": "code#1"}, "legacy": {"x": 1}},
            "error": {"error": "invalid_grant", "error_codes": "not a list", "future_field": 3},
            "answer": ["not", "a", "dict"], "cookies_set": "nope"}])
    (h,) = db.load_hops(engine, sid)
    assert h.role == Role.CALLBACK and h.params == Params(query={"code": "code#1"})
    assert h.error == ErrorAnswer(error="invalid_grant")
    assert h.answer.location is None and h.cookies_set == ()


def test_from_json_of_junk_is_none():
    assert from_json(ErrorAnswer, "x") is None
    assert from_json(Token, {"kind": "access_token"}) is None  # required fields missing
