"""The capture addon's mitmproxy conventions, with mitmproxy's own test helpers: logging instead of
print, options honoured at run time, commands, flow comments."""
from __future__ import annotations

import logging
import re

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from authtrace import live
from authtrace.addons import capture
from authtrace.store import db

from builders import signin_flows


def _record(a, flows):
    for f in flows:
        a.requestheaders(f)
        a.response(f)


def test_auth_flows_get_a_comment_and_ordinary_ones_none(tmp_path, caplog):
    a = capture.AuthTrace()
    flows = signin_flows(secrets=(raw := {}))
    with taddons.context(a) as tctx:
        tctx.configure(a, authtrace_db=str(tmp_path / "c.db"))
        with caplog.at_level(logging.INFO, logger="authtrace"):
            a.running()
            flows[1].comment = "mine: look at this"  # the user's own comment stays
            _record(a, flows)
            a.done()
    comments = [f.comment for f in flows]
    assert comments[0].startswith("authtrace: authorize GET 200 ") and "client_id=" in comments[0]
    assert comments[1].startswith("mine: look at this")
    assert comments[4].startswith("authtrace: token POST 200 code#")
    assert "[access_token#" in comments[4] and "aud=https://ai.azure.com" in comments[4] and "exp=20" in comments[4]
    assert comments[6].startswith("authtrace: api POST 200") and "signature verified" in comments[6]
    for secret in raw.values():
        assert not any(secret in c for c in comments)
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("authtrace")]
    assert any(m.startswith("authtrace: recording session 1 into") for m in logged)
    assert sum(m.startswith("#") for m in logged) == 6  # one line per hop, through logging
    assert all(re.search(r"\d\d:\d\d:\d\d\.\d{3}Z ", m) for m in logged if m.startswith("#"))  # UTC, Z


def test_configure_switches_database_at_run_time_and_refuses_a_bad_one(tmp_path):
    a = capture.AuthTrace()
    first, second = tmp_path / "one.db", tmp_path / "two.db"
    with taddons.context(a) as tctx:
        tctx.configure(a, authtrace_db=str(first))
        a.running()
        _record(a, signin_flows()[:1])
        tctx.configure(a, authtrace_db=str(second))  # as mitmweb's options editor or `set` does
        _record(a, signin_flows()[:1])
        with pytest.raises(exceptions.OptionsError, match="is a directory"):
            tctx.configure(a, authtrace_db=str(tmp_path))
        _record(a, signin_flows()[:1])  # still recording into the second database
        a.done()
    assert [len(db.load_hops(db.open_db(str(first)), 1))] == [1]
    assert [len(db.load_hops(db.open_db(str(second)), 1))] == [2]


def test_commands_findings_and_report(tmp_path):
    a, lf = capture.AuthTrace(), live.LiveFindings()
    flows = signin_flows()
    flows.insert(4, signin_flows()[3])  # the same callback twice: a duplicate redirect
    with taddons.context(a, lf) as tctx:
        tctx.configure(a, authtrace_db=str(tmp_path / "cmd.db"))
        tctx.configure(lf, authtrace_findings=False)
        a.running()
        _record(a, flows)
        lines = tctx.master.commands.execute("authtrace.findings")
        assert any("duplicate_redirect" in line for line in lines), lines
        assert flows[3].marked and flows[3].comment.count("FINDING") >= 1  # evidence marked at once
        out = tmp_path / "r.html"
        summary = tctx.master.commands.call("authtrace.report", str(out))
        assert summary.startswith(f"{out}: ") and out.exists()
        with pytest.raises(exceptions.CommandError):
            tctx.master.commands.call("authtrace.report", str(tmp_path / "missing-dir" / "r.html"))
        a.done()
