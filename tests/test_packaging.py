"""Installable anywhere: every runtime import is a declared dependency, a wheel holds only
`authtrace/…`, and that wheel installed into a fresh virtual environment runs `check` on a fixture
and loads into the mitmdump of that environment."""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PACKAGE_DIRS = ("addons", "store", "reports", "cli")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_import_is_a_declared_dependency():
    declared = {_norm(re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0])
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    imported: set[str] = set()
    for d in PACKAGE_DIRS:
        for path in (ROOT / d).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    dists = md.packages_distributions()
    missing = {}
    for mod in sorted(imported - set(sys.stdlib_module_names) - {"authtrace", "__future__"}):
        names = {_norm(n) for n in dists.get(mod, [mod])}
        if not names & declared:
            missing[mod] = sorted(names)
    assert missing == {}, f"imported but not declared in [project].dependencies: {missing}"


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """A wheel built from this checkout, installed with its dependencies into a new virtual environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", ROOT], tmp)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp / "dist").glob("authtrace-*.whl"))
    venv = tmp / "venv"
    assert _run([sys.executable, "-m", "venv", venv], tmp).returncode == 0
    bindir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    done = _run([bindir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], tmp, 900)
    assert done.returncode == 0, done.stderr[-3000:]
    return wheel, bindir, tmp


def test_wheel_holds_only_the_authtrace_package(wheel_venv):
    wheel, _, _ = wheel_venv
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert z.read(top).decode().split() == ["authtrace"]
    assert all(n.startswith(("authtrace/", "authtrace-")) for n in names), names
    for needed in ("authtrace/main.py", "authtrace/addon.py", "authtrace/live.py", "authtrace/addons/capture.py",
                   "authtrace/addons/views.py", "authtrace/addons/importers/har.py", "authtrace/store/records.py",
                   "authtrace/store/db.py", "authtrace/reports/checks/__init__.py", "authtrace/reports/html.py"):
        assert needed in names
    assert any(n.startswith("authtrace/reports/templates/") and n.endswith(".html") for n in names)


def test_installed_wheel_checks_a_fixture(wheel_venv):
    _, bindir, tmp = wheel_venv
    out = _run([bindir / "authtrace", "check", FIXTURES / "scenario-b.har"], tmp)
    assert out.returncode == 1, out.stderr
    assert "19 auth hops, 4 finding(s)" in out.stdout
    for kind in ("reused_code", "duplicate_redirect", "token_revoked", "idp_error"):
        assert kind in out.stdout
    report = _run([bindir / "authtrace", "import", FIXTURES / "scenario-b.mitm", "--db", tmp / "r.db"], tmp)
    assert report.returncode == 0, report.stderr
    html = _run([bindir / "authtrace", "report", "--db", tmp / "r.db", "-o", tmp / "r.html"], tmp)
    assert html.returncode == 0 and "4 finding(s)" in html.stdout, html.stderr  # templates are packaged


def test_installed_wheel_addon_loads_into_that_environments_mitmdump(wheel_venv):
    _, bindir, tmp = wheel_venv
    path = _run([bindir / "authtrace", "addon-path"], tmp).stdout.strip()
    assert Path(path).is_file() and "site-packages" in path and path.endswith("addon.py")
    db = tmp / "mitmdump.db"
    out = _run([bindir / "mitmdump", "-n", "-q", "-r", FIXTURES / "scenario-b.mitm", "-s", path,
                "--set", f"authtrace_db={db}", "--set", f"confdir={tmp / 'conf'}"], tmp, 120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    count = _run([bindir / "python", "-c", "import sys; from authtrace.store import db; "
                  "print(len(db.load_hops(db.open_db(sys.argv[1]), 1)))", db], tmp)
    assert count.stdout.strip() == "19", count.stderr


def test_addon_without_authtrace_in_that_python_says_how_to_install(tmp_path):
    """What a mitmproxy without authtrace beside it (a standalone binary) shows when given the addon file."""
    code = ("import sys; sys.modules['authtrace'] = None\n"
            "from mitmproxy.addons import script\n"
            f"script.load_script({str(ROOT / 'cli' / 'addon.py')!r})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "cannot be imported by the Python that runs this mitmproxy" in out.stderr, out.stderr
    assert "pipx inject mitmproxy" in out.stderr and "standalone binaries cannot load it" in out.stderr
