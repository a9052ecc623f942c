"""ruff and mypy (strict) over the whole program, run by the suite so a red one fails CI.

mypy cannot follow setuptools' package-dir mapping (the design keeps `addons/`, `store/`, `reports/`
and `cli/` at the top and installs them as `authtrace.*`), so without help it resolves no
`authtrace.*` import and checks no call between the floors. The test builds a link tree
`.typecheck/authtrace/` (addons, store, reports and the files of cli/) and checks that tree, then
writes each error with its real path.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / ".typecheck"


def link_tree() -> Path:
    pkg = TREE / "authtrace"
    if TREE.exists():
        for p in sorted(TREE.rglob("*"), reverse=True):
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    pkg.mkdir(parents=True, exist_ok=True)
    for name in ("addons", "store", "reports"):
        (pkg / name).symlink_to(REPO / name, target_is_directory=True)
    for f in (REPO / "cli").glob("*.py"):
        (pkg / f.name).symlink_to(f)
    return pkg


def real_path(line: str) -> str:
    """`.typecheck/authtrace/addons/hops.py:3: …` -> `addons/hops.py:3: …`, `…/authtrace/main.py` -> `cli/main.py`."""
    line = re.sub(r"^\.typecheck/authtrace/(addons|store|reports)/", r"\1/", line)
    return re.sub(r"^\.typecheck/authtrace/", "cli/", line)


def test_mypy_strict_sees_the_whole_package():
    pkg = link_tree()
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", os.path.relpath(pkg, REPO)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    errors = "\n".join(real_path(x) for x in r.stdout.splitlines())
    assert r.returncode == 0, errors
    checked = int(re.search(r"in (\d+) source files", r.stdout).group(1))
    assert checked >= 40  # every module, the floors' calls between them included


def test_ruff_is_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_floors_import_only_downwards():
    """store/ at the bottom, addons/ above it, reports/ above that (reading only the store), the command
    line as the roof (DESIGN §3), checked with import-linter over the same link tree."""
    link_tree()
    r = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", str(REPO / "pyproject.toml")],
                       cwd=TREE, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(TREE)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout
