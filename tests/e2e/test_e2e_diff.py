"""`authtrace diff` on real captures of the e2e suite (issue 12): the clean sign-in (scenario a)
against the double callback (b), the token sent to the wrong API (c) and the altered state (d),
and one capture saved twice (b as .mitm and as HAR). Each through the real command line, judged on
its JSON: the difference that explains BAD's finding comes first and says so; nothing about the
app's configuration or the browser differs between two runs of the same app in the same Chromium."""

from __future__ import annotations

import json

from . import rig
from .scenarios import Outcome
from schema import valid


def saved(outcome: Outcome, suffix: str = ".mitm"):
    return next(f for f in outcome.files if f.suffix == suffix)


def diff(*args) -> tuple[int, dict, str]:
    rc, out, err = rig.authtrace_cli("diff", *args, "--json").result()
    assert rc in (0, 1), f"authtrace diff exited {rc}:\n{err}"
    return rc, valid(json.loads(out), "diff"), err


def ranks(out: dict) -> list[str]:
    return [d["rank"] for d in out["differences"]]


def explained(d: dict) -> set[str]:
    return {f["kind"] for f in d["explains"]}


def assert_causes_first(out: dict) -> None:
    r = ranks(out)
    assert r == sorted(r, key=["explains", "configuration", "client", "outcome", "timing"].index), r
    assert not {"configuration", "client"} & set(r), out["differences"]  # same app, same browser


def test_clean_against_double_callback(scenario_a, scenario_b):
    rc, out, _ = diff(saved(scenario_a), saved(scenario_b))
    assert rc == 1 and out["relevant"]
    first, second = out["differences"][:2]
    assert first["subject"] == "callback requests" and (first["good"], first["bad"]) == ("1", "2")
    assert explained(first) == {"reused_code", "duplicate_redirect"}
    assert second["subject"] == "token (authorization_code) requests" and (second["good"], second["bad"]) == ("1", "2")
    assert explained(second) == {"reused_code", "token_revoked", "idp_error"}
    assert_causes_first(out)
    assert {"state", "authorization code", "token fingerprints"} <= {e["subject"] for e in out["expected"]}


def test_clean_against_wrong_audience(scenario_a, scenario_c):
    rc, out, _ = diff(saved(scenario_a), saved(scenario_c))
    assert rc == 1
    first = out["differences"][0]
    assert first["subject"] == "api GET other.test/data" and first["good"] is None
    assert " 401 invalid_token" in first["bad"] and "token aud https://api.test" in first["bad"]
    (finding,) = out["bad"]["findings"]
    assert explained(first) == {"wrong_audience"} and first["bad_hops"][0] in finding["evidence"]
    assert_causes_first(out)


def test_clean_against_altered_state(scenario_a, scenario_d):
    rc, out, _ = diff(saved(scenario_a), saved(scenario_d))
    assert rc == 1
    first, second = out["differences"][:2]
    assert first["subject"] == "callback · state matches the authorize request's"
    assert (first["good"], first["bad"]) == ("yes", "no") and explained(first) == {"state_mismatch"}
    assert second["subject"] == "callback · status" and (second["good"], second["bad"]) == ("200", "400")
    assert [f["kind"] for f in second["shows"]] == ["state_mismatch"] and not second["explains"]
    assert_causes_first(out)


def test_one_capture_as_mitm_and_as_har_has_no_relevant_difference(scenario_b):
    rc, out, _ = diff(saved(scenario_b), saved(scenario_b, ".har"))
    assert rc == 0 and not out["relevant"] and out["differences"] == []
    steps = [s for fl in out["flows"] for s in fl["steps"]]
    assert steps and all(s["good"] and s["bad"] and s["good"]["hop"] == s["bad"]["hop"] for s in steps)


def test_page_of_real_captures(scenario_a, scenario_c, tmp_path):
    page = tmp_path / "diff.html"
    rc, out, err = rig.authtrace_cli("diff", saved(scenario_a), saved(scenario_c), "-o", page,
                                     "--redact-pii").result()
    assert rc == 1, err
    assert out.startswith(f"{page}: 2 relevant difference(s), 1 explaining BAD's findings")
    html = page.read_text(encoding="utf-8")  # written only after the leak check passed
    assert "this explains BAD&#39;s wrong_audience" in html and "<script" not in html.lower()
