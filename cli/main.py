"""Command line. Each command maps to one library call; user mistakes get one sentence and exit 2."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.engine import Engine

from authtrace import __version__

EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3  # an internal error: an authtrace bug, never mistaken for "findings" (1)


def _say(msg: str) -> None:
    print(f"authtrace: {msg}", file=sys.stderr)


def _progress_bar(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None
    start = time.monotonic()

    def show(done: int, total: int) -> None:
        if time.monotonic() - start < 0.5 and done < total:
            return
        pct = 100 * done / total if total else 100
        bar = "#" * int(pct / 5)
        sys.stderr.write(f"\r{label[:40]:<40} [{bar:<20}] {pct:5.1f}%")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _open(db_path: str) -> Engine:
    from authtrace.store import db

    try:
        return db.open_db(db_path)
    except db.DatabaseError as e:
        _say(str(e))
        raise SystemExit(EXIT_BAD_INPUT) from None


def _roles_summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{r} {n}" for r, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _import_each(engine: Engine, files: list[str], failed: list[str]) -> Iterator[tuple[str, Any]]:
    """Import each file into its own session; unusable files are reported in one sentence and skipped."""
    from authtrace.addons.importers import CaptureError, import_file

    for path in files:
        try:
            res = import_file(engine, path, _progress_bar(os.path.basename(path)))
        except CaptureError as e:
            _say(str(e))
            failed.append(path)
            continue
        if res.decoder_errors:
            _say(f"internal error: {res.decoder_errors} flow(s) of {path} could not be decoded (an authtrace bug; "
                 "please report it); the other hops were kept.")
        yield path, res


def cmd_import(args: argparse.Namespace) -> int:
    from authtrace.reports.diagnose import analyse
    from authtrace.store import db

    engine = _open(args.db)
    failed: list[str] = []
    rc = 0
    for path, res in _import_each(engine, args.files, failed):
        roles = _roles_summary(db.role_counts(engine).get(res.session_id, {}))
        session = db.load_session(engine, res.session_id)
        assert session is not None
        a = analyse(engine, session)  # stored, so `sessions` can list the findings
        if _bugs(a):
            rc = EXIT_BUG
        print(f"{path}: {res.flows} flows, {res.hops} auth hops ({roles or 'none'}) -> session {res.session_id}, "
              f"{len(a.findings)} finding(s)" + (f", {res.skipped} unreadable entries skipped" if res.skipped else ""))
        if res.problem:
            _say(res.problem)
            rc = max(rc, EXIT_BAD_INPUT)
        if res.decoder_errors:
            rc = EXIT_BUG
    return EXIT_BAD_INPUT if failed and rc != EXIT_BUG else rc


def cmd_sessions(args: argparse.Namespace) -> int:
    from authtrace.store import clock, db

    engine = _open(args.db)
    rows = db.sessions(engine)
    if not rows:
        print("no capture sessions yet: run `authtrace record` or `authtrace import FILE`")
        return 0
    roles, findings = db.role_counts(engine), db.finding_counts(engine)
    print(f"{'id':>4}  {'kind':<5} {'first hop':<24}  {'span':>7}  {'hops':>5}  {'flows':>6}  {'findings':<10}"
          "  roles / source")
    for s in rows:
        assert s.id is not None
        first = clock.stamp(s.first_seen) if s.first_seen else "-"
        span = clock.duration(s.last_seen - s.first_seen) if s.first_seen and s.last_seen else "-"
        f = findings.get(s.id)
        found = ", ".join(f"{n} {sev}" for sev, n in sorted(f.items())) if f else "-"
        print(f"{s.id:>4}  {s.kind:<5} {first:<24}  {span:>7}  {s.hops:>5}  {s.flows_seen:>6}  {found:<10}  "
              f"{_roles_summary(roles.get(s.id, {})) or '-'}  [{s.source}]" + (f"  ! {s.problem}" if s.problem else ""))
    return 0


def _watch_findings(db_path: str, since: float, stop: threading.Event) -> None:
    """While recording, re-run the checks when new hops arrive and print each new finding once it
    has held for two checks in a row: a finding that the next hop explains away (a scope granted
    by the refresh answer 200 ms later) is never printed. Checks run at most every 2 s, and less
    often as the session grows, so the proxy in the same process keeps its CPU."""
    from authtrace.reports.checks import run_checks
    from authtrace.reports.terminal import finding_line
    from authtrace.store import db

    engine: Engine | None = None
    printed: set[tuple[str, str]] = set()
    pending: set[tuple[str, str]] = set()
    hops_seen, pause = -1, 2.0
    while not stop.wait(pause):
        try:
            engine = engine or db.open_db(db_path)
            session = db.load_session(engine)
            if session is None or session.id is None or session.created < since or session.hops > 20000:
                continue
            if session.hops == hops_seen and not pending:
                continue
            hops_seen = session.hops
            started = time.monotonic()
            findings, _ = run_checks(db.load_hops(engine, session.id))
            # this thread shares the proxy's process: spend at most ~1/5 of the time on live hints
            pause = max(2.0, 5 * (time.monotonic() - started))
            now = {(f.kind, f.title): f for f in findings}
            for key, f in now.items():
                if key in pending and key not in printed:
                    printed.add(key)
                    print("FINDING " + finding_line(f), flush=True)
            pending = {k for k in now if k not in printed}
        except Exception:  # noqa: BLE001 - the capture matters more than the live hint; the report has it all
            continue


def cmd_record(args: argparse.Namespace) -> int:
    from mitmproxy.tools.main import mitmdump

    from authtrace.addons import capture

    argv = ["-s", capture.__file__, "--listen-port", str(args.listen_port),
            "--set", f"authtrace_db={args.db}", "--set", "flow_detail=0", "--set", "termlog_verbosity=warn"]
    if args.session:
        argv += ["--set", f"authtrace_session={args.session}"]
    if args.save_flows:
        argv += ["--save-stream-file", args.save_flows]
    if args.browser:
        argv += ["--set", "authtrace_browser=true"]
        if args.url:
            argv += ["--set", f"authtrace_browser_url={args.url}"]
        if args.browser_arg:
            argv += ["--set", "authtrace_browser_args=" + " ".join(shlex.quote(a) for a in args.browser_arg)]
    if args.app:
        argv += ["--set", f"authtrace_app={args.app}"]
    argv += args.extra
    print(f"authtrace: proxy on http://127.0.0.1:{args.listen_port}  (Ctrl-C stops and saves; "
          f"`authtrace env` prints the proxy settings for a shell)", flush=True)
    stop = threading.Event()
    if "://" not in args.db:
        threading.Thread(target=_watch_findings, args=(args.db, time.time() - 1, stop), daemon=True).start()
    try:
        rc = mitmdump(argv)
    finally:
        stop.set()
    return int(rc or 0)


def _expect(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        host, sep, aud = p.partition("=")
        if not sep or not host or not aud:
            _say(f"--expect-audience wants HOST=AUDIENCE, got {p!r}.")
            raise SystemExit(EXIT_BAD_INPUT)
        out[host.strip()] = aud.strip()
    return out


def _bugs(a: Any) -> bool:
    """Say that a check failed, as an authtrace bug, in one sentence each; True when one did."""
    for x in a.failures:
        _say(f"internal error in the check {x.check} ({x.error}): an authtrace bug, please report it; "
             "the other checks' findings are shown.")
    return bool(a.failures)


def cmd_check(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from authtrace.reports.diagnose import analyse
    from authtrace.reports.jsonout import to_json
    from authtrace.reports.terminal import finding_line
    from authtrace.store import db

    expect = _expect(args.expect_audience)
    with tempfile.TemporaryDirectory(prefix="authtrace-") as tmp:
        engine = _open(args.db or os.path.join(tmp, "check.db"))
        failed: list[str] = []
        rc = 0
        for path, res in _import_each(engine, args.files, failed):
            session = db.load_session(engine, res.session_id)
            assert session is not None
            a = analyse(engine, session, expect)
            if args.json:
                print(json.dumps(to_json(a), ensure_ascii=False))
            else:
                print(f"{path}: {len(a.hops)} auth hops, {len(a.findings)} finding(s)")
                for f in a.findings:
                    print("  " + finding_line(f))
                for n in a.notes:
                    print("  note: " + n)
            if _bugs(a) or res.decoder_errors:
                rc = EXIT_BUG
            elif res.problem:
                _say(res.problem)
                rc = max(rc, EXIT_BAD_INPUT)
            elif a.findings and rc == 0:
                rc = EXIT_FINDINGS
        engine.dispose()
    return EXIT_BAD_INPUT if failed and rc != EXIT_BUG else rc


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from authtrace.reports.diagnose import analyse
    from authtrace.reports.jsonout import to_json
    from authtrace.store import db

    engine = _open(args.db)
    session = db.load_session(engine, args.session)
    if session is None:
        _say(f"no capture session {args.session} in {args.db}" if args.session else
             f"{args.db} holds no capture session yet: run `authtrace record` or `authtrace import FILE`.")
        return EXIT_BAD_INPUT
    a = analyse(engine, session, _expect(args.expect_audience))
    rc = EXIT_BUG if _bugs(a) else 0
    if args.json:
        print(json.dumps(to_json(a, args.redact_pii), ensure_ascii=False, indent=2))
        return rc
    from authtrace.reports.html import LeakError, render_html, write_report

    out = args.output or f"authtrace-{session.id}.html"
    try:
        write_report(render_html(a, redact_pii=args.redact_pii), out)
    except LeakError as e:
        _say(f"refusing to write {out}: {e}")
        return EXIT_BAD_INPUT
    print(f"{out}: {len(a.findings)} finding(s), {len(a.hops)} hops")
    return rc


def _diff_side(engine: Engine, label: str, arg: str, db_path: str | None, expect: dict[str, str]
               ) -> tuple[Any, str, int]:
    """One side of `diff`: a capture file (imported into `engine`) or, with --db, a stored session id.
    Returns (analysis, what to call it, exit code so far); raises SystemExit(2) on unusable input."""
    from authtrace.reports.diagnose import analyse
    from authtrace.store import db

    rc = 0
    if arg.isdigit() and not os.path.exists(arg):
        if not db_path:
            _say(f"{label} {arg} is no file; to compare a stored session, name its database with --db PATH.")
            raise SystemExit(EXIT_BAD_INPUT)
        sid, source = int(arg), f"session {arg} of {db_path}"
    else:
        failed: list[str] = []
        results = list(_import_each(engine, [arg], failed))
        if failed:
            raise SystemExit(EXIT_BAD_INPUT)
        res = results[0][1]
        if res.decoder_errors:
            rc = EXIT_BUG
        if res.problem:
            _say(f"{label}: {res.problem}")
            rc = rc or EXIT_BAD_INPUT
        sid, source = res.session_id, arg
    session = db.load_session(engine, sid)
    if session is None:
        _say(f"{label}: no capture session {sid} in {db_path}.")
        raise SystemExit(EXIT_BAD_INPUT)
    a = analyse(engine, session, expect)
    if _bugs(a):
        rc = EXIT_BUG
    if not a.hops:
        _say(f"{label}: {source} holds no sign-in hop, so there is nothing to compare.")
        raise SystemExit(EXIT_BAD_INPUT)
    return a, source, rc


def cmd_diff(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from authtrace.reports.diff import compare

    expect = _expect(args.expect_audience)
    with tempfile.TemporaryDirectory(prefix="authtrace-") as tmp:
        engine = _open(args.db or os.path.join(tmp, "diff.db"))  # one store: both sides share one fingerprint key
        try:
            good, good_source, rc_good = _diff_side(engine, "GOOD", args.good, args.db, expect)
            bad, bad_source, rc_bad = _diff_side(engine, "BAD", args.bad, args.db, expect)
            c = compare(good, bad, good_source, bad_source)
        finally:
            engine.dispose()
    rc = max(rc_good, rc_bad)
    if args.output:
        from authtrace.reports.diff_html import render_diff_html
        from authtrace.reports.html import LeakError, write_report

        try:
            write_report(render_diff_html(c, redact_pii=args.redact_pii), args.output)
        except LeakError as e:
            _say(f"refusing to write {args.output}: {e}")
            return EXIT_BAD_INPUT
        explained = sum(1 for d in c.differences if d.explains)
        print(f"{args.output}: {len(c.differences)} relevant difference(s), {explained} explaining BAD's findings")
    if args.json:
        from authtrace.reports.diff_json import to_json

        print(json.dumps(to_json(c, args.redact_pii), ensure_ascii=False, indent=2))
    elif not args.output:
        from authtrace.reports.diff_terminal import render

        print("\n".join(render(c, steps=args.steps)))
    return rc or (EXIT_FINDINGS if c.relevant else 0)


def cmd_env(args: argparse.Namespace) -> int:
    from authtrace.addons.launch import ca_file, proxy_env

    if not os.path.exists(ca_file(args.confdir)):
        _say(f"no mitmproxy CA in {args.confdir} yet: start `authtrace record` once, then run this again.")
    for k, v in proxy_env(args.listen_port, args.confdir).items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="authtrace", description="Shows exactly where a browser sign-in breaks.")
    ap.add_argument("--version", action="version", version=f"authtrace {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--db", default=os.environ.get("AUTHTRACE_DB", "authtrace.db"),
                       help="database file or SQLAlchemy URL (default: authtrace.db)")
        return p

    p = with_db(sub.add_parser("record", help="run the proxy and record sign-in hops as they happen"))
    p.add_argument("--listen-port", type=int, default=8080)
    p.add_argument("--session", help="name for this capture session")
    p.add_argument("--save-flows", metavar="FILE", help="also save the raw flows (mitmproxy format; holds secrets)")
    p.add_argument("--browser", action="store_true", help="open a clean Chromium/Chrome/Edge already using the proxy")
    p.add_argument("--url", help="page the browser opens first (with --browser)")
    p.add_argument("--browser-arg", action="append", metavar="ARG", help="extra browser argument (repeatable)")
    p.add_argument("--app", metavar="CMD", help="run CMD with HTTPS_PROXY and the CA set, so its back channel is "
                                                "recorded too; recording stops when it exits")
    p.add_argument("extra", nargs="*", help="after --: extra mitmdump arguments")
    p.set_defaults(fn=cmd_record)

    p = with_db(sub.add_parser("import", help="import HAR or mitmproxy flow files"))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(fn=cmd_import)

    p = sub.add_parser("check", help="import captures into a throwaway database and report findings (exit 1 if any)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--db", help="keep the imported hops in this database instead of a temporary one")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("--expect-audience", action="append", metavar="HOST=AUD",
                   help="the audience your own API at HOST accepts (repeatable; HOST may be *.domain)")
    p.set_defaults(fn=cmd_check)

    p = with_db(sub.add_parser("report", help="findings and the shareable HTML timeline of a session"))
    p.add_argument("session", nargs="?", type=int, help="session id (default: the latest)")
    p.add_argument("-o", "--output", help="HTML file (default: authtrace-<session>.html)")
    p.add_argument("--json", action="store_true", help="print findings as JSON instead of writing HTML")
    p.add_argument("--redact-pii", action="store_true", help="mask email, upn, name, oid and IP addresses")
    p.add_argument("--expect-audience", action="append", metavar="HOST=AUD")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("diff", help="compare a working sign-in (GOOD) with a failing one (BAD): what differs, "
                                    "the cause of BAD's findings first (exit 1 if anything relevant differs)")
    p.add_argument("good", metavar="GOOD", help="capture file (HAR or .mitm), or a session id with --db")
    p.add_argument("bad", metavar="BAD", help="capture file (HAR or .mitm), or a session id with --db")
    p.add_argument("--db", help="database holding the sessions named by id; files are imported into it too "
                                "(default: a throwaway database)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("-o", "--output", metavar="FILE", help="write the comparison as one HTML page")
    p.add_argument("--redact-pii", action="store_true", help="mask email, upn, name, oid and IP addresses")
    p.add_argument("--steps", action="store_true", help="also print the aligned steps")
    p.add_argument("--expect-audience", action="append", metavar="HOST=AUD")
    p.set_defaults(fn=cmd_diff)

    p = sub.add_parser("env", help="print proxy and CA environment lines for a shell (eval \"$(authtrace env)\")")
    p.add_argument("--listen-port", type=int, default=8080)
    p.add_argument("--confdir", default="~/.mitmproxy", help="mitmproxy's configuration directory")
    p.set_defaults(fn=cmd_env)

    p = with_db(sub.add_parser("sessions", help="list capture sessions"))
    p.set_defaults(fn=cmd_sessions)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `authtrace ... | head`
        sys.stderr.close()
        return 0
    except Exception as e:  # noqa: BLE001 - an authtrace bug: one sentence (traceback with AUTHTRACE_DEBUG=1)
        if os.environ.get("AUTHTRACE_DEBUG"):
            traceback.print_exc()
        _say(f"internal error ({type(e).__name__}: {str(e)[:200]}): an authtrace bug, please report it "
             "(AUTHTRACE_DEBUG=1 shows the traceback).")
        return EXIT_BUG
