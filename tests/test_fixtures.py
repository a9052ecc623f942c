"""Real-traffic fixtures: scenario b of the end-to-end suite, recorded by `authtrace record`.

tests/fixtures/scenario-b.mitm (``--save-flows``) and scenario-b.har (mitmproxy's HAR export of
the same flows) hold one real sign-in in which the callback was delivered twice (the IdP refused
the second redemption of the code with invalid_grant and revoked the grant), after which the
first access token was refused at userinfo. Regenerate them with
``.venv/bin/python tests/e2e/make_fixtures.py``; no browser is needed here.

The assertions hold for any regeneration: nothing depends on the codes, ports or times of one run.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from schema import valid

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MITM = FIXTURES / "scenario-b.mitm"
HAR = FIXTURES / "scenario-b.har"
SCENARIO_B_KINDS = {"reused_code", "duplicate_redirect", "idp_error", "token_revoked"}


def authtrace(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "authtrace", *map(str, args)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """`authtrace check scenario-b.mitm scenario-b.har --json --db <db>`: one database, one fingerprint key."""
    db = tmp_path_factory.mktemp("fixtures") / "check.db"
    done = authtrace("check", MITM, HAR, "--json", "--db", db)
    objects = [valid(json.loads(line)) for line in done.stdout.splitlines() if line.strip()]
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        sessions = {Path(r["source"]).suffix.lstrip("."): r["id"] for r in con.execute("SELECT id, source FROM capturesession")}
        rows = {
            suffix: [dict(r, number=n) for n, r in enumerate(con.execute(
                "SELECT * FROM hop WHERE session_id = ? ORDER BY started, id", (sid,)), 1)]
            for suffix, sid in sessions.items()
        }
    finally:
        con.close()
    return done, dict(zip(("mitm", "har"), objects, strict=True)), rows


def kinds(obj: dict) -> set[str]:
    return {f["kind"] for f in obj["findings"]}


def shape(rows: list[dict]) -> list[tuple]:
    return [(r["role"], r["method"], r["host"], r["path"], r["status"], bool(r["is_error"]), r["code_fp"], r["state"])
            for r in rows]  # fmt: skip


@pytest.mark.parametrize("path", [MITM, HAR], ids=["mitm", "har"])
def test_fixture_is_small_and_test_hosts_only(path):
    assert path.exists(), f"{path} missing: run .venv/bin/python tests/e2e/make_fixtures.py"
    assert path.stat().st_size < 300_000
    if path.suffix == ".har":
        hosts = {e["request"]["url"].split("/")[2].split(":")[0] for e in json.loads(path.read_text())["log"]["entries"]}
        assert hosts <= {"idp.test", "app.test", "api.test", "other.test"}, hosts


@pytest.mark.parametrize("path", [MITM, HAR], ids=["mitm", "har"])
def test_check_finds_scenario_b(path):
    """Each file on its own, exactly as a user runs it: exit 1 and scenario b's findings."""
    done = authtrace("check", path, "--json")
    assert done.returncode == 1, done.stderr
    (obj,) = [valid(json.loads(line)) for line in done.stdout.splitlines() if line.strip()]
    assert kinds(obj) == SCENARIO_B_KINDS, [f["title"] for f in obj["findings"]]
    assert obj["notes"] == []
    (idp,) = [f for f in obj["findings"] if f["kind"] == "idp_error"]
    assert "invalid_grant" in idp["title"]
    assert [(e["method"], e["status"]) for e in idp["evidence"]] == [("POST", 400)]


def test_har_and_mitm_give_the_same_hops(checked):
    done, objects, rows = checked
    assert done.returncode == 1, done.stderr
    assert set(rows) == {"mitm", "har"}
    assert rows["mitm"], "no hops imported"
    # Same database, same fingerprint key: roles, statuses, code fingerprints and states all equal.
    assert shape(rows["har"]) == shape(rows["mitm"])
    assert objects["mitm"]["hops"] == objects["har"]["hops"] == len(rows["mitm"])
    assert kinds(objects["mitm"]) == kinds(objects["har"]) == SCENARIO_B_KINDS


def test_fixture_is_scenario_b(checked):
    """What the capture holds: two callbacks with one code, its two redemptions, the revoked token."""
    _, objects, rows = checked
    hops = rows["mitm"]
    callbacks = [h for h in hops if h["role"] == "callback"]
    assert [h["status"] for h in callbacks] == [200, 400]
    code = callbacks[0]["code_fp"]
    assert code and callbacks[1]["code_fp"] == code
    redemptions = [h for h in hops if h["role"] == "token" and h["code_fp"] == code]
    assert [h["status"] for h in redemptions] == [200, 400]
    assert json.loads(redemptions[1]["error"])["error"] == "invalid_grant"
    assert [h["status"] for h in hops if h["role"] == "userinfo"] == [200, 200, 401]
    (reused,) = [f for f in objects["mitm"]["findings"] if f["kind"] == "reused_code"]
    assert {e["hop"] for e in reused["evidence"]} >= {h["number"] for h in callbacks + redemptions}


def test_fingerprints_inside_urls_keep_them_urls(checked):
    """`code=code#…` would turn the rest of a URL into a fragment: in JSON the `#` is percent-encoded."""
    from urllib.parse import parse_qs, urlsplit

    _, objects, _ = checked
    urls = [e["url"] for f in objects["mitm"]["findings"] for e in f["evidence"]]
    with_code = [u for u in urls if "code=" in u]
    assert with_code
    for u in with_code:
        parts = urlsplit(u)
        assert parts.fragment == "" and parse_qs(parts.query)["code"][0].startswith("code#"), u
