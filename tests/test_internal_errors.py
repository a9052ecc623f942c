"""An internal error is an authtrace bug, said as such (exit 3), never mistaken for a finding (exit 1),
and it never loses the other checks' findings."""
import json

from authtrace.main import main
from authtrace.reports import checks

from builders import signin_flows, to_har
from schema import valid


def broken_check(s):
    raise KeyError("boom")


def test_a_check_that_raises_is_reported_as_a_bug_and_the_others_still_count(tmp_path, monkeypatch, capsys):
    flows = signin_flows()
    flows[3].request.content = flows[3].request.content.replace(b"state=", b"state=x")
    capture = tmp_path / "bad.har"
    capture.write_text(json.dumps(to_har(flows)))
    monkeypatch.setattr(checks, "CHECKS", (broken_check, *checks.CHECKS))
    assert main(["check", str(capture)]) == 3
    out, err = capsys.readouterr()
    assert "state_mismatch" in out  # the other checks' findings are kept
    assert "internal error in the check broken_check (KeyError: 'boom')" in err and "authtrace bug" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["check", str(capture), "--json"]) == 3
    obj = valid(json.loads(capsys.readouterr().out))
    assert obj["internal_errors"] == ["broken_check: KeyError: 'boom'"]
    assert [f["kind"] for f in obj["findings"]] == ["state_mismatch"]
    db = str(tmp_path / "s.db")
    assert main(["import", str(capture), "--db", db]) == 3
    out = tmp_path / "r.html"
    assert main(["report", "--db", db, "-o", str(out)]) == 3
    assert "authtrace bug:</strong> the check broken_check: KeyError" in out.read_text()


def test_an_unexpected_error_is_one_sentence_and_exit_3(tmp_path, monkeypatch, capsys):
    from authtrace.reports import diagnose

    def explode(*a, **k):
        raise RuntimeError("unexpected state")

    capture = tmp_path / "s.har"
    capture.write_text(json.dumps(to_har(signin_flows())))
    monkeypatch.setattr(diagnose, "run_checks", explode)
    assert main(["check", str(capture)]) == 3
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: unexpected state): an authtrace bug" in err and "Traceback" not in err
