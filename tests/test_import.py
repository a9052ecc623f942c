"""Import: HAR and .mitm through the same flow -> hops path; damaged input keeps what came before.
The store tests run on SQLite and PostgreSQL (the `store` fixture)."""
import json
import os
import stat
import subprocess
import sys

import orjson
import pytest
from mitmproxy.io import FlowWriter

from authtrace.addons.importers import CaptureError, import_file
from authtrace.store import db

from builders import chrome_har, signin_flows, to_har

CLI = [sys.executable, "-m", "authtrace"]


def write_mitm(path, flows):
    with open(path, "wb") as fh:
        w = FlowWriter(fh)
        for f in flows:
            w.add(f)


def comparable(engine, sid):
    keep = ("role", "method", "url", "host", "path", "status", "is_error", "code_fp", "state", "client_id",
            "params", "state_info", "error", "number")
    return [{k: getattr(h, k) for k in keep} for h in db.load_hops(engine, sid)]


def test_har_and_mitm_give_the_same_hops(tmp_path, store):
    engine = store
    flows = signin_flows()
    (tmp_path / "s.har").write_bytes(orjson.dumps(to_har(flows)))
    write_mitm(tmp_path / "s.mitm", flows)
    a = import_file(engine, str(tmp_path / "s.har"))
    b = import_file(engine, str(tmp_path / "s.mitm"))
    assert a.problem is None and b.problem is None
    ha, hb = comparable(engine, a.session_id), comparable(engine, b.session_id)
    assert [h["role"] for h in ha] == ["authorize", "login", "callback", "token", "jwks", "api"]
    assert ha == hb


def test_chrome_style_har_complete_signin(tmp_path, store):
    engine = store
    secrets = {}
    (tmp_path / "chrome.har").write_text(json.dumps(chrome_har(signin_flows(secrets=secrets))))
    res = import_file(engine, str(tmp_path / "chrome.har"))
    hops = db.load_hops(engine, res.session_id)
    assert [h.role for h in hops] == ["authorize", "login", "callback", "token", "jwks", "api"]
    authz, _, cb, token, _, api = hops
    assert cb.code_fp == token.code_fp and authz.state == cb.state
    assert authz.state_info.format == "msal"
    toks = {t.kind: t for t in token.tokens}
    assert toks["id_token"].claims["preferred_username"] == "alice@contoso.test"
    assert toks["id_token"].signature == "verified"
    assert toks["access_token"].aud == ("https://ai.azure.com",)
    s = db.load_session(engine, res.session_id)
    assert s.hops == 6 and s.flows_seen == 7 and s.kind == "har"


def test_database_never_holds_a_secret(tmp_path):
    secrets = {}
    flows = signin_flows(secrets=secrets)
    (tmp_path / "s.har").write_text(json.dumps(to_har(flows)))
    path = tmp_path / "a.db"
    engine = db.open_db(str(path))
    import_file(engine, str(tmp_path / "s.har"))
    engine.dispose()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("a.db*"))
    for name, value in secrets.items():
        assert value.encode() not in raw, f"{name} leaked into the database"
        if "." in value and value.startswith("eyJ"):
            assert value.split(".")[2].encode() not in raw, f"{name} signature leaked"


@pytest.mark.parametrize("content,needle", [
    (None, "no such file"),
    (b"", "is empty"),
    (b"GIF89a binary", "not a capture"),
    (b'{"foo": 1}', "not a HAR file"),
])
def test_unusable_input_is_one_sentence(tmp_path, engine, content, needle):
    p = tmp_path / "x.har"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(CaptureError, match=needle):
        import_file(engine, str(p))


def test_directory_is_refused(tmp_path, engine):
    with pytest.raises(CaptureError, match="is a directory"):
        import_file(engine, str(tmp_path))


def test_truncated_har_keeps_hops_before_the_damage(tmp_path, store):
    engine = store
    data = json.dumps(to_har(signin_flows()), indent=1).encode()
    cut = data.index(b"discovery/v2.0/keys")  # cut inside the JWKS entry
    (tmp_path / "t.har").write_bytes(data[:cut])
    res = import_file(engine, str(tmp_path / "t.har"))
    assert "truncated or damaged" in res.problem
    assert [h.role for h in db.load_hops(engine, res.session_id)] == ["authorize", "login", "callback", "token"]


def test_corrupt_mitm_tail_keeps_flows(tmp_path, store):
    engine = store
    p = tmp_path / "c.mitm"
    write_mitm(p, signin_flows())
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.8)] + b"garbage#tail")
    res = import_file(engine, str(p))
    assert res.problem and "damaged" in res.problem
    assert len(db.load_hops(engine, res.session_id)) >= 4


def test_cli_import_and_sessions(tmp_path, store_url):
    (tmp_path / "s.har").write_text(json.dumps(to_har(signin_flows())))
    dbp = store_url
    out = subprocess.run(CLI + ["import", str(tmp_path / "s.har"), "--db", dbp], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "6 auth hops" in out.stdout and "session 1" in out.stdout
    out = subprocess.run(CLI + ["sessions", "--db", dbp], capture_output=True, text=True)
    assert "har" in out.stdout and "authorize 1" in out.stdout


def test_cli_bad_input_exit_2_no_traceback(tmp_path):
    (tmp_path / "t.har").write_text('{"log": {"entries": [')
    dbp = str(tmp_path / "cli.db")
    for target in (str(tmp_path / "missing.har"), str(tmp_path), str(tmp_path / "t.har")):
        out = subprocess.run(CLI + ["import", target, "--db", dbp], capture_output=True, text=True)
        assert out.returncode == 2
        assert "Traceback" not in out.stderr and target in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
