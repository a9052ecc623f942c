"""What `authtrace diff` prints and writes: the terminal summary, the JSON, the HTML page (same CSP
as the timeline, leak check, `--redact-pii`, no script, checked in real headless Chromium) and the
command's inputs and exit codes (0 nothing relevant, 1 relevant differences, 2 unusable input)."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from authtrace.main import main
from authtrace.reports.diff_html import render_diff_html
from authtrace.reports.diff_json import to_json
from authtrace.reports.diff_terminal import render
from authtrace.reports.html import write_report
from authtrace.reports.leakcheck import find_leaks

from canaries import canaries, leaks
from diffkit import ARM, diff_of, signin, write
from schema import valid
from test_report import _open, chromium  # noqa: F401 - the module's real headless Chromium and its page opener

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARM_SCOPE = "openid profile offline_access https://management.azure.com/.default"
SECRETS = ("0.AXoA-code-1-secret-value-xyz", "0.AXoA-code-2-secret-value-xyz", "verifier-2-vvvv",
           "0.AXoA-refresh-token-opaque-secret-value-xyz", "cs~Secret.Value_123", "hunter2-correct-horse",
           "ESTSAUTH-cookie-secret-value")


def foundry_pair(engine, tmp_path, **bad):
    return diff_of(engine, tmp_path, signin(1), signin(2, scope=ARM_SCOPE, aud=ARM, api_status=401, **bad))


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # unusable input: one sentence, then exit 2
        return int(e.code or 0)


class Page(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


# ---- terminal and JSON --------------------------------------------------------------------------

def test_terminal_puts_the_explaining_difference_first(tmp_path, engine):
    lines = render(foundry_pair(engine, tmp_path))
    assert lines[0] == "GOOD good.har: 6 auth hops, no finding"
    assert lines[1] == "BAD  bad.har: 6 auth hops, 1 finding(s): wrong_audience"
    assert lines[2] == "aligned 1 sign-in flow: 6 steps paired, 0 only in GOOD, 0 only in BAD"
    assert lines[3] == "Explains BAD's findings:"
    assert lines[4].startswith("  1. authorize · scope: GOOD https://ai.azure.com/.default")
    assert "BAD https://management.azure.com/.default" in lines[4] and lines[4].endswith("[#1]")
    assert lines[6].startswith("       explains wrong_audience: An access token for https://management.azure.com/")
    assert lines[-1].startswith("differs, as expected (not ranked): ") and "state" in lines[-1]
    text = "\n".join(lines)
    assert not any(s in text for s in SECRETS) and "eyJ" not in text


def test_json_is_the_same_comparison(tmp_path, engine):
    c = foundry_pair(engine, tmp_path)
    out = valid(to_json(c), "diff")
    text = json.dumps(out)
    assert out["relevant"] is True and out["bad"]["findings"][0]["kind"] == "wrong_audience"
    d0 = out["differences"][0]
    assert d0["rank"] == "explains" and d0["subject"] == "authorize · scope" and d0["bad_hops"] == [1]
    assert d0["explains"][0]["kind"] == "wrong_audience"
    assert [d["subject"] for d in out["differences"]] == [d.subject for d in c.differences]
    step = out["flows"][0]["steps"][0]
    assert step["good"]["hop"] == 1 and step["good"]["flow"] == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", step["good"]["started"])
    assert {e["subject"] for e in out["expected"]} >= {"state", "token fingerprints"}
    assert not any(s in text for s in SECRETS) and "eyJ" not in text


# ---- the page -------------------------------------------------------------------------------------

def test_page_has_the_timeline_csp_one_style_and_no_script(tmp_path, engine):
    html = render_diff_html(foundry_pair(engine, tmp_path))
    assert "Aligned 1 sign-in flow: 6 steps paired, 0 only in GOOD, 0 only in BAD." in html
    doc = Page(html)
    (meta,) = [a for t, a in doc.tags if t == "meta" and a.get("http-equiv", "").lower() == "content-security-policy"]
    csp = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in meta["content"].split(";")) if d}
    assert csp["default-src"] == ["'none'"] and csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    assert csp["img-src"] == ["data:"] and "script-src" not in csp
    assert len(doc.styles) == 1
    digest = base64.b64encode(hashlib.sha256(doc.styles[0].encode()).digest()).decode()
    assert csp["style-src"] == [f"'sha256-{digest}'"]
    assert html.index('http-equiv="Content-Security-Policy"') < html.index("<style>")
    assert "<script" not in html.lower() and not [a for _, a in doc.tags if "style" in a]
    for tag, attrs in doc.tags:
        for name in ("src", "href", "action", "srcset", "data", "poster"):
            if attrs.get(name) is not None:
                assert attrs[name].startswith("#"), (tag, name, attrs[name])
        assert tag not in ("link", "iframe", "object", "embed", "base", "form")
    assert not re.search(r"@import|url\(", doc.styles[0])
    # every in-page link has its target
    ids = {a["id"] for _, a in doc.tags if "id" in a}
    assert {a["href"][1:] for _, a in doc.tags if a.get("href", "").startswith("#")} <= ids


def test_page_passes_the_leak_check_and_holds_no_secret(tmp_path, engine):
    html = render_diff_html(foundry_pair(engine, tmp_path))
    assert find_leaks(html) == []
    assert not any(s in html for s in SECRETS) and "eyJ" not in html
    out = tmp_path / "diff.html"
    write_report(html, str(out))
    assert out.read_text(encoding="utf-8") == html


def test_redact_pii_masks_people_in_the_page_and_the_json(tmp_path, engine):
    bad = signin(2, scope=ARM_SCOPE, aud=ARM, api_status=401)
    bad[-1].response.set_text('{"error":{"code":"PermissionDenied","message":"alice@contoso.test from 203.0.113.7 '
                              'has no access"}}')
    c = diff_of(engine, tmp_path, signin(1), bad)
    plain = render_diff_html(c)
    assert "alice@contoso.test" in plain and "203.0.113.7" in plain
    for text in (render_diff_html(c, redact_pii=True), json.dumps(valid(to_json(c, redact_pii=True), "diff"))):
        assert "alice@contoso.test" not in text and "203.0.113.7" not in text
        assert "[user 1]" in text and "[ip 1]" in text
    assert "personal data masked" in render_diff_html(c, redact_pii=True)


def quiet(seen: dict, out: Path) -> bool:
    """The page asked for nothing but itself, logged no error and opened no dialog."""
    errors = [m for m in seen["console"] if m[0] in ("error", "pageerror")]
    assert (seen["requests"], errors, seen["dialogs"]) == ([out.as_uri()], [], []), seen
    return True


HOSTILE = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">{{ 7*7 }}'


def test_page_in_headless_chromium(chromium, tmp_path, engine):  # noqa: F811 - the fixture
    c = foundry_pair(engine, tmp_path)
    out = tmp_path / "diff.html"
    write_report(render_diff_html(c), str(out))
    page, seen = _open(chromium, out, viewport={"width": 1360, "height": 1000}, color_scheme="light")
    h1 = page.locator("h1").inner_text()
    assert h1.startswith("authorize · scope: GOOD ") and h1.endswith("this explains BAD's wrong_audience")
    first = page.locator("#diff-1")
    assert first.is_visible() and (first.bounding_box() or {"y": 9999})["y"] < 1000  # on the first screen
    assert "explains" in first.inner_text().lower() and "wrong_audience" in first.inner_text()
    # the finding link and the hop links land on their targets
    first.get_by_role("link", name="wrong_audience").click()
    assert page.evaluate("location.hash") == "#finding-1"
    page.locator("#diff-1 a.ev", has_text="#1").last.click()
    assert page.evaluate("location.hash") == "#b-1" and page.locator("#b-1").is_visible()
    assert page.locator("table.steps tbody tr").count() == 6
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "diff.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(ARTIFACTS / "diff-dark.png"))
    assert quiet(seen, out)
    page.close()


def test_hostile_values_stay_text_in_chromium(chromium, tmp_path, engine):  # noqa: F811 - the fixture
    bad = signin(2, scope=f"openid {HOSTILE}", user_agent=f"Mozilla/5.0 {HOSTILE}")
    c = diff_of(engine, tmp_path, signin(1), bad)
    out = tmp_path / "hostile.html"
    html = render_diff_html(c)
    assert "<script>window" not in html and "<img" not in html
    out.write_text(html, encoding="utf-8")
    page, seen = _open(chromium, out)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 0 and page.evaluate("document.images.length") == 0
    assert page.get_by_text("{{ 7*7 }}").first.is_visible()
    assert quiet(seen, out)
    page.close()


# ---- the command -------------------------------------------------------------------------------------

def test_command_exit_codes_and_outputs(tmp_path, capsys):
    good = write(tmp_path / "good.har", signin(1))
    bad = write(tmp_path / "bad.mitm", signin(2, scope=ARM_SCOPE, aud=ARM, api_status=401))
    same = write(tmp_path / "good.mitm", signin(1))
    assert run(["diff", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "explains wrong_audience" in out and out.index("Explains BAD's findings:") < out.index("Client configuration:")
    assert run(["diff", str(good), str(same), "--steps"]) == 0
    out = capsys.readouterr().out
    assert "no relevant difference" in out
    assert [line.split()[0] for line in out.splitlines()[4:10]] == ["authorize", "login", "callback", "token", "jwks",
                                                                  "api"]
    assert run(["diff", str(good), str(bad), "--json"]) == 1
    out = valid(json.loads(capsys.readouterr().out), "diff")
    assert out["differences"][0]["explains"][0]["kind"] == "wrong_audience"
    assert out["$schema"] == "https://authtrace.dev/schema/diff-1.json"
    page = tmp_path / "diff.html"
    assert run(["diff", str(good), str(bad), "-o", str(page), "--redact-pii"]) == 1
    assert capsys.readouterr().out == f"{page}: 5 relevant difference(s), 2 explaining BAD's findings\n"
    assert "personal data masked" in page.read_text(encoding="utf-8")


def test_command_with_stored_sessions_and_files_mixed(tmp_path, capsys):
    dbp = str(tmp_path / "support.db")
    good = write(tmp_path / "good.har", signin(1))
    bad = write(tmp_path / "bad.har", signin(2, scope=ARM_SCOPE, aud=ARM, api_status=401))
    assert run(["import", str(good), str(bad), "--db", dbp]) == 0
    capsys.readouterr()
    assert run(["diff", "1", "2", "--db", dbp]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"GOOD session 1 of {dbp}: 6 auth hops") and "explains wrong_audience" in out
    assert run(["diff", str(good), "2", "--db", dbp]) == 1  # a file (imported as session 3) against a session
    assert "explains wrong_audience" in capsys.readouterr().out
    assert run(["diff", "1", "3", "--db", dbp]) == 0


@pytest.mark.parametrize("case", ["missing", "id-without-db", "unknown-session", "no-auth-hop", "not-a-capture"])
def test_command_unusable_input_exits_2_in_one_sentence(tmp_path, capsys, case):
    good = write(tmp_path / "good.har", signin(1))
    dbp = str(tmp_path / "x.db")
    (tmp_path / "empty.har").write_text('{"log": {"version": "1.2", "entries": []}}')
    (tmp_path / "notes.txt").write_text("hello")
    argv = {"missing": ["diff", str(good), str(tmp_path / "nope.har")],
            "id-without-db": ["diff", str(good), "7"],
            "unknown-session": ["diff", str(good), "7", "--db", dbp],
            "no-auth-hop": ["diff", str(good), str(tmp_path / "empty.har")],
            "not-a-capture": ["diff", str(tmp_path / "notes.txt"), str(good)]}[case]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("authtrace: ") and "Traceback" not in err[0]


def test_no_canary_reaches_the_terminal_the_json_or_the_page(tmp_path, capsys):
    """The 50-odd secrets of the canary capture (every place a sign-in carries one) against a clean
    sign-in: none in any output of `diff`, in any encoding."""
    secrets, flows = canaries()
    good = write(tmp_path / "good.har", signin(1))
    bad = write(tmp_path / "canaries.mitm", flows)
    page = tmp_path / "diff.html"
    outputs = []
    for extra in ([], ["--json"], ["--steps"], ["-o", str(page)]):
        assert run(["diff", str(good), str(bad), *extra]) == 1
        outputs.append(capsys.readouterr())
    assert page.exists()
    for text in [o.out + o.err for o in outputs] + [page.read_text(encoding="utf-8")]:
        assert leaks(text, secrets) == []
