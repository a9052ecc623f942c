"""The command line never surprises: one sentence and a non-zero exit for every mistake, nothing
created by a reading command, help in the order of the work, colour only on a terminal."""
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from builders import signin_flows, to_har

CLI = [sys.executable, "-m", "authtrace"]


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def one_sentence(err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("authtrace: ") and "Traceback" not in err


def store(tmp_path: Path) -> str:
    capture = tmp_path / "s.har"
    capture.write_text(json.dumps(to_har(signin_flows())))
    dbp = str(tmp_path / "s.db")
    assert run("import", str(capture), "--db", dbp).returncode == 0
    return dbp


def test_report_output_into_a_missing_folder_or_onto_a_folder(tmp_path):
    dbp = store(tmp_path)
    r = run("report", "--db", dbp, "-o", str(tmp_path / "no" / "such" / "r.html"))
    assert r.returncode == 2 and one_sentence(r.stderr) and "does not exist" in r.stderr
    r = run("report", "--db", dbp, "-o", str(tmp_path))
    assert r.returncode == 2 and one_sentence(r.stderr) and "is a folder" in r.stderr


def test_reading_commands_never_create_a_store_and_session_0_is_an_error(tmp_path):
    missing = tmp_path / "typo.db"
    for args in (["report"], ["report", "--json"], ["sessions"]):
        r = run(*args, "--db", str(missing))
        assert r.returncode == 2 and one_sentence(r.stderr) and "no database at" in r.stderr, args
        assert not missing.exists()
    r = run("report", "0", "--db", store(tmp_path))
    assert r.returncode == 2 and one_sentence(r.stderr) and "start at 1" in r.stderr


def test_report_json_with_redact_pii_masks_people(tmp_path):
    from urllib.parse import urlencode

    from builders import APP, IDP, flow

    denied = flow("GET", f"https://{APP}/signin-oidc?" + urlencode({
        "error": "access_denied", "state": "s1", "error_description": "AADSTS50105: The signed in user "
        "'alice@contoso.test' is not assigned to a role for the application."}), headers={"referer": f"https://{IDP}/"})
    capture = tmp_path / "denied.har"
    capture.write_text(json.dumps(to_har([denied])))
    dbp = str(tmp_path / "p.db")
    run("import", str(capture), "--db", dbp)
    plain = run("report", "--json", "--db", dbp).stdout
    masked = run("report", "--json", "--redact-pii", "--db", dbp).stdout
    assert "alice@contoso.test" in plain
    assert "alice@contoso.test" not in masked and "[email 1]" in masked and json.loads(masked)["findings"]


def test_readable_warning_only_for_a_real_store(tmp_path):
    dbp = store(tmp_path)
    os.chmod(dbp, 0o644)
    r = run("sessions", "--db", dbp)
    assert r.returncode == 0 and "can be read by other users" in r.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    os.chmod(notes, 0o644)
    r = run("sessions", "--db", str(notes))
    assert r.returncode == 2 and one_sentence(r.stderr) and "cannot use" in r.stderr


def test_record_refuses_a_folder_as_store(tmp_path):
    r = run("record", "--db", str(tmp_path), "--listen-port", "0")
    assert r.returncode == 2 and one_sentence(r.stderr) and "is a directory" in r.stderr


def test_record_app_that_fails_and_a_browser_that_cannot_start(tmp_path):
    conf = ["--", "--set", f"confdir={tmp_path / 'conf'}"]
    r = run("record", "--db", str(tmp_path / "a.db"), "--listen-port", "0", "--app", "exit 3", *conf)
    assert r.returncode == 2 and "the app exited with status 3" in r.stderr and "Traceback" not in r.stderr
    r = run("record", "--db", str(tmp_path / "b.db"), "--listen-port", "0", "--browser", *conf,
            env={"AUTHTRACE_BROWSER": "/bin/false"})
    assert r.returncode == 2 and "the browser exited with status 1" in r.stderr and "Traceback" not in r.stderr


def test_record_browser_and_app_together_and_says_what_it_saved(tmp_path):
    """Both children run against the proxy; when the app exits, recording stops and says what to run next."""
    marker = tmp_path / "browser-args"
    fake = tmp_path / "browser.sh"  # stands in for Chromium: records how it was started, then waits to be stopped
    fake.write_text(f'#!/bin/sh\necho "$@" > {marker}\nexec sleep 60\n')
    fake.chmod(0o755)
    r = run("record", "--db", str(tmp_path / "both.db"), "--listen-port", "0", "--browser", "--app",
            "sleep 2; echo app-ran-with=$HTTPS_PROXY", "--", "--set", f"confdir={tmp_path / 'conf'}",
            env={"AUTHTRACE_BROWSER": str(fake)})
    assert r.returncode == 0, r.stderr
    assert "--proxy-server=http://127.0.0.1:" in marker.read_text()
    assert re.search(r"app-ran-with=http://127\.0\.0\.1:\d+", r.stdout)
    assert re.search(r"saved session 1 into .*both\.db: 0 auth hops of 0 flows; see it with "
                     r"`authtrace report 1 --db .*both\.db`", r.stdout)


def test_help_in_workflow_order_with_examples_and_bare_authtrace_prints_it():
    bare = run()
    assert bare.returncode == 0 and bare.stdout == run("--help").stdout
    order = [m.group(1) for m in re.finditer(r"^    (\w[\w-]*)", bare.stdout, re.M)]
    wanted = ["record", "import", "check", "report", "diff", "sessions", "env"]
    assert [c for c in order if c in wanted] == [c for c in wanted if c in order] and len(order) >= 6
    for command in ("record", "import", "check", "report", "sessions", "env"):
        text = run(command, "--help").stdout
        assert "example" in text and f"authtrace {command}" in text, command
    assert "(default: 8080)" in run("record", "--help").stdout


def test_authtrace_db_is_honoured_by_every_command(tmp_path):
    dbp = str(tmp_path / "env.db")
    capture = tmp_path / "s.har"
    capture.write_text(json.dumps(to_har(signin_flows())))
    env = {"AUTHTRACE_DB": dbp}
    assert run("import", str(capture), env=env, cwd=tmp_path).returncode == 0
    assert run("check", str(capture), env=env, cwd=tmp_path).returncode == 0
    assert "har" in run("sessions", env=env, cwd=tmp_path).stdout
    assert json.loads(run("report", "--json", env=env, cwd=tmp_path).stdout)["session"] == 2
    assert not (tmp_path / "authtrace.db").exists()


def _through_a_terminal(args: list[str], env: dict) -> str:
    main, child = pty.openpty()
    proc = subprocess.Popen(CLI + args, stdout=child, stderr=child, env={**os.environ, **env})
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(main)
    return out.decode("utf-8", "replace")


def test_colour_on_a_terminal_only(tmp_path):
    flows = signin_flows()
    flows[3].request.content = flows[3].request.content.replace(b"state=", b"state=x")
    capture = tmp_path / "bad.har"
    capture.write_text(json.dumps(to_har(flows)))
    tty = _through_a_terminal(["check", str(capture)], {"NO_COLOR": "", "TERM": "xterm"})
    assert "\033[1;31mERROR" in tty
    assert "\033[" not in _through_a_terminal(["check", str(capture)], {"NO_COLOR": "1", "TERM": "xterm"})
    assert "\033[" not in run("check", str(capture)).stdout  # piped
