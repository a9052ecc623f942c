#!/usr/bin/env python3
"""Regenerate the real-traffic fixtures of scenario b: tests/fixtures/scenario-b.{mitm,har}.

    .venv/bin/python tests/e2e/make_fixtures.py [--out DIR]

Runs the end-to-end tests of scenario b (the callback delivered twice, then the revoked token
used again: see scenarios.py) with AUTHTRACE_E2E_EXPORT set, so the capture's saved files are
copied out, and keeps them only when every scenario-b test passed:

  scenario-b.mitm  `authtrace record --save-flows` (mitmproxy flow format)
  scenario-b.har   mitmproxy's own HAR export of the same flows (`--set hardump=FILE`, passed
                   through `authtrace record -- ...`): the proxy's view, back channel included,
                   so both files hold the same hops. Stored as the same JSON without
                   mitmproxy's 4-space indentation (about half the size).

Both keep only *.test traffic (save_stream_filter; Chromium's own calls to Google hosts stay
out). They hold the rig's throwaway secrets (client secret, codes, tokens signed by a key made
for that run): test values, nothing else. Needs what the e2e suite needs (Chromium, Node).
Normal test runs never rewrite the fixtures; tests/test_fixtures.py reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CAPTURE = "b-code-reuse"  # scenarios.SCENARIOS["b"].name
EXPORT_ENV = "AUTHTRACE_E2E_EXPORT"  # scenarios.EXPORT_ENV
MAX_BYTES = 300_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures", help="default: tests/fixtures")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="authtrace-fixtures-") as tmp:
        export = Path(tmp) / "export"
        env = {**os.environ, EXPORT_ENV: str(export)}
        cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-k", "scenario_b", "-p", "no:cacheprovider",
               "--basetemp", str(Path(tmp) / "pytest")]  # fmt: skip
        print("$ " + " ".join(cmd), flush=True)
        done = subprocess.run(cmd, cwd=REPO, env=env)
        if done.returncode != 0:
            print(f"make_fixtures: the scenario-b tests did not pass (exit {done.returncode}); fixtures unchanged",
                  file=sys.stderr)  # fmt: skip
            return 1
        produced = {suffix: export / f"{CAPTURE}.{suffix}" for suffix in ("mitm", "har")}
        missing = [str(p) for p in produced.values() if not p.exists()]
        if missing:
            print(f"make_fixtures: the run did not export {missing}; fixtures unchanged", file=sys.stderr)
            return 1
        for path in produced.values():
            size = path.stat().st_size
            if size > MAX_BYTES:
                print(f"make_fixtures: {path.name} is {size} bytes (limit {MAX_BYTES}); fixtures unchanged",
                      file=sys.stderr)  # fmt: skip
                return 1
        hosts = {e["request"]["url"].split("/")[2].split(":")[0]
                 for e in json.loads(produced["har"].read_text())["log"]["entries"]}  # fmt: skip
        if not all(h.endswith(".test") for h in hosts):
            print(f"make_fixtures: non-.test hosts in the HAR: {sorted(hosts)}; fixtures unchanged", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        for suffix, path in produced.items():
            target = args.out / f"scenario-b.{suffix}"
            if suffix == "har":  # the same JSON, compact
                har = json.loads(path.read_text(encoding="utf-8"))
                target.write_text(json.dumps(har, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
            else:
                shutil.copyfile(path, target)
            print(f"wrote {target} ({target.stat().st_size} bytes)")

    check = subprocess.run(
        [sys.executable, "-m", "authtrace", "check", str(args.out / "scenario-b.mitm"), str(args.out / "scenario-b.har")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    print(check.stdout, end="")
    print(check.stderr, end="", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
