"""One hop number (the position in time order within its session) and one clock (UTC, `Z`) in every
place a person reads: terminal, JSON, HTML, the findings' own sentences."""
import json
import re
import subprocess
import sys

from builders import signin_flows, to_har
from schema import valid

CLI = [sys.executable, "-m", "authtrace"]
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=120)


def reused(t0: float) -> dict:
    """A sign-in whose callback is replayed 2 s later, as a HAR whose entries are NOT in time order
    (exporters write them in completion order)."""
    flows = signin_flows(t0)
    again = flows[3].copy()
    again.request.timestamp_start += 2
    again.response.status_code = 500
    har = to_har(flows + [again])
    entries = har["log"]["entries"]
    entries.insert(0, entries.pop())  # the replay first in the file, last in time
    return har


def test_hop_numbers_follow_time_and_agree_everywhere(tmp_path):
    other = tmp_path / "a.har"
    other.write_text(json.dumps(to_har(signin_flows(1_790_000_000.0))))
    bad = tmp_path / "b.har"
    bad.write_text(json.dumps(reused(1_790_000_100.0)))
    dbp = str(tmp_path / "two.db")
    alone = run("check", str(bad), "--json")
    both = run("check", str(other), str(bad), "--json", "--db", dbp)
    assert alone.returncode == both.returncode == 1, both.stderr
    b_alone = valid(json.loads(alone.stdout))
    b_both = valid(json.loads(both.stdout.splitlines()[1]))
    def numbers(obj: dict) -> list:
        return [(f["kind"], [e["hop"] for e in f["evidence"]]) for f in obj["findings"]]
    assert numbers(b_alone) == numbers(b_both)  # the same numbers whatever else the store holds
    dup = next(f for f in b_alone["findings"] if f["kind"] == "duplicate_redirect")
    assert [e["hop"] for e in dup["evidence"]] == [3, 7] and [e["role"] for e in dup["evidence"]] == ["callback"] * 2
    assert "#3 callback" in dup["explanation"] and "#7 callback" in dup["explanation"]
    assert all(ISO.fullmatch(e["started"]) for e in dup["evidence"])
    # the terminal and the HTML of the second session use the same numbers
    text = run("check", str(other), str(bad), "--db", str(tmp_path / "three.db")).stdout
    assert "duplicate_redirect" in text and "[hops #3, #7]" in text
    out = tmp_path / "r.html"
    rep = run("report", "2", "--db", dbp, "-o", str(out))
    assert rep.returncode == 0, rep.stderr
    html = out.read_text()
    assert re.findall(r'data-hop="(\d+)"', html) == [str(n) for n in range(1, 8)]
    assert 'href="#hop-3"' in html and 'href="#hop-7"' in html and "#3 callback" in html
    times = re.findall(r'<span class="time">(\d\d:\d\d:\d\d\.\d{3})Z<small>\+', html)
    assert len(times) == 7 and times == sorted(times)  # UTC time of each row, in time order top to bottom


def test_every_time_a_person_reads_is_utc(tmp_path):
    har = tmp_path / "b.har"
    har.write_text(json.dumps(reused(1_790_000_100.0)))
    dbp = str(tmp_path / "t.db")
    assert run("import", str(har), "--db", dbp).returncode == 0
    listing = run("sessions", "--db", dbp).stdout
    assert "2026-09-21T14:15:0" in listing  # 1_790_000_100 is 2026-09-21T14:15:00Z, whatever the local zone
    report = valid(json.loads(run("report", "--json", "--db", dbp).stdout))
    reuse = next(f for f in report["findings"] if f["kind"] == "reused_code")
    assert ISO.fullmatch(reuse["details"]["issued"])  # a time in the details: never a raw epoch
    assert "14:15:0" in reuse["explanation"] and "Z" in reuse["explanation"]
    assert not re.search(r"\b1\d{9}(\.\d+)?\b", json.dumps(report))


def test_sessions_counts_findings_without_running_checks(tmp_path):
    har = tmp_path / "b.har"
    har.write_text(json.dumps(reused(1_790_000_100.0)))
    dbp = str(tmp_path / "t.db")
    run("import", str(har), "--db", dbp)
    assert re.search(r"\b2 error\b", run("sessions", "--db", dbp).stdout)
