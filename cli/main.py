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


def _open(db_path: str, upgrade: bool = False, readonly: bool = False) -> Engine:
    from authtrace.store import db

    try:
        return db.open_db(db_path, upgrade=upgrade, readonly=readonly)
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
        roles = _roles_summary(db.role_counts(engine, [res.session_id]).get(res.session_id, {}))
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


def _when(text: str | None, what: str) -> float | None:
    from authtrace.store import clock

    if not text:
        return None
    try:
        return clock.parse_when(text)
    except ValueError as e:
        _say(f"{what}: {e}")
        raise SystemExit(EXIT_BAD_INPUT) from None


def _session_filter(args: argparse.Namespace) -> Any:
    from authtrace.store.search import SessionFilter

    return SessionFilter(host=args.host, client_id=args.client_id, tenant=args.tenant, finding=args.finding,
                         since=_when(args.since, "--since"), until=_when(args.until, "--until"), text=args.text)


def cmd_sessions(args: argparse.Namespace) -> int:
    import json

    from authtrace.store import clock, db

    engine = _open(args.db)
    flt = _session_filter(args)
    rows = db.sessions(engine, flt, limit=args.limit or None)
    ids = [s.id for s in rows if s.id is not None]
    roles, findings = db.role_counts(engine, ids), db.finding_counts(engine, ids)
    if args.json:
        print(json.dumps([{"id": s.id, "name": s.name, "kind": s.kind, "source": s.source,
                           "first_seen": clock.stamp(s.first_seen) if s.first_seen else None,
                           "last_seen": clock.stamp(s.last_seen) if s.last_seen else None, "hops": s.hops,
                           "flows_seen": s.flows_seen, "problem": s.problem, "roles": roles.get(s.id or 0, {}),
                           "findings": findings.get(s.id or 0, {})} for s in rows], ensure_ascii=False))
        return 0
    if not rows:
        print("no capture session matches" if not flt.empty() else
              "no capture sessions yet: run `authtrace record` or `authtrace import FILE`")
        return 0
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
    if args.limit and len(rows) == args.limit:
        more = db.count_sessions(engine, flt) - len(rows)
        if more > 0:
            print(f"({more} older matching session(s) not shown: --limit 0 shows all)")
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    import json

    from authtrace.store import clock, db, search

    engine = _open(args.db)
    given = args.fingerprint
    if given == "-":  # a raw value on stdin (never on the command line): fingerprinted with the store's key
        from authtrace.addons.secrets import Fingerprinter

        value = sys.stdin.read().strip()
        if not value:
            _say("find -: no value on standard input.")
            return EXIT_BAD_INPUT
        given = Fingerprinter(db.fingerprint_key(engine)).fp(value, "value")
    digest = search.digest_of(given)
    if digest is None:
        _say(f"{given!r} is no fingerprint: give it as a report prints it (code#3f9a1c20e4), its 10 hex digits, "
             "or - to read a raw value from standard input.")
        return EXIT_BAD_INPUT
    seen = search.find(engine, digest)
    if args.json:
        print(json.dumps({"digest": digest, "seen": [{"session": x.session_id, "session_name": x.session_name,
                                                      "hop": x.number, "time": clock.stamp(x.started),
                                                      "role": x.role, "method": x.method, "host": x.host,
                                                      "path": x.path, "status": x.status,
                                                      "fingerprint": x.fingerprint, "where": x.place}
                                                     for x in seen]}, ensure_ascii=False))
        return 0
    label = given if "#" in given else f"#{digest}"
    if not seen:
        print(f"{label}: not seen in any session of {db.shown(args.db)}")
        return 0
    sessions = list(dict.fromkeys(x.session_id for x in seen))
    t0 = seen[0].started
    print(f"{label}: {len(seen)} hop(s) in {len(sessions)} session(s), first seen {clock.stamp(t0)}")
    for x in seen:
        status = str(x.status) if x.status is not None else "---"
        print(f"  session {x.session_id:<4} #{x.number:<4} {clock.offset(x.started - t0):>14}  {x.role:<9} "
              f"{x.method:<6} {status:>3}  {x.host}{x.path}  {x.fingerprint} in {x.place}  [{x.session_name}]")
    if len(sessions) > 1:
        print(f"  ! the same value appears in {len(sessions)} captures: a code redeemed twice, a token used after "
              "its sign-in, or one capture imported twice")
    return 0


def _removed_text(removed: dict[str, int]) -> str:
    return (f"{removed.get('hop', 0)} hops, {removed.get('token', 0)} tokens, {removed.get('finding', 0)} findings"
            f" removed")


def _session_line(s: Any) -> str:
    from authtrace.store import clock

    last = s.last_seen or s.created
    return f"  session {s.id:<4} {s.kind:<5} {s.hops:>6} hops  last {clock.stamp(last)}  [{s.name}]"


def cmd_prune(args: argparse.Namespace) -> int:
    from authtrace.store import clock, db

    try:
        age = clock.parse_age(args.older_than)
    except ValueError as e:
        _say(f"--older-than: {e}")
        return EXIT_BAD_INPUT
    engine = _open(args.db)
    old = db.sessions_before(engine, time.time() - age)
    if not old:
        print(f"no session older than {args.older_than} in {db.shown(args.db)}")
        return 0
    for s in old:
        print(_session_line(s))
    if args.dry_run:
        print(f"would delete {len(old)} session(s) older than {args.older_than} (--dry-run: nothing deleted)")
        return 0
    removed = db.delete_sessions(engine, [s.id for s in old if s.id is not None])
    print(f"deleted {len(old)} session(s) older than {args.older_than}: {_removed_text(removed)}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from authtrace.store import db

    engine = _open(args.db)
    found = {sid: db.load_session(engine, sid) for sid in dict.fromkeys(args.sessions)}
    missing = [str(sid) for sid, s in found.items() if s is None]
    if missing:
        _say(f"no capture session {', '.join(missing)} in {db.shown(args.db)}: nothing deleted.")
        return EXIT_BAD_INPUT
    for s in found.values():
        print(_session_line(s))
    removed = db.delete_sessions(engine, list(found))
    print(f"deleted {len(found)} session(s): {_removed_text(removed)}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from authtrace.store import db, migrate

    _open(args.db, upgrade=True).dispose()
    print(f"{db.shown(args.db)}: at schema {migrate.head()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from authtrace import serve
    from authtrace.store import db

    engine = _open(args.db, readonly=True)
    try:
        return serve.run(engine, db.shown(args.db), args.host, args.port, redact_pii=args.redact_pii)
    except serve.ServeError as e:
        _say(str(e))
        return EXIT_BAD_INPUT


def _watch_findings(engine: Engine, session_id: int, stop: threading.Event) -> None:
    """While recording, re-run the checks when new hops arrive and print each new finding once it
    has held for two checks in a row: a finding that the next hop explains away (a scope granted
    by the refresh answer 200 ms later) is never printed. Checks run at most every 2 s, and less
    often as the session grows, so the proxy in the same process keeps its CPU. Watches the one
    session this recording writes, whatever other processes write into the same store."""
    from authtrace.reports.checks import run_checks
    from authtrace.reports.terminal import finding_line
    from authtrace.store import db

    printed: set[tuple[str, str]] = set()
    pending: set[tuple[str, str]] = set()
    hops_seen, pause = -1, 2.0
    while not stop.wait(pause):
        try:
            session = db.load_session(engine, session_id)
            if session is None or session.hops > 20000:
                continue
            if session.hops == hops_seen and not pending:
                continue
            hops_seen = session.hops
            started = time.monotonic()
            findings, _ = run_checks(db.load_hops(engine, session_id))
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
    engine, sid = _live_session(args)
    if sid:
        argv += ["--set", f"authtrace_session_id={sid}"]
    argv += args.extra
    print(f"authtrace: proxy on http://127.0.0.1:{args.listen_port}  (Ctrl-C stops and saves; "
          f"`authtrace env` prints the proxy settings for a shell)", flush=True)
    stop = threading.Event()
    if engine is not None:
        threading.Thread(target=_watch_findings, args=(engine, sid, stop), daemon=True).start()
    rc = 1
    try:
        rc = int(mitmdump(argv) or 0)
    finally:
        stop.set()
        if engine is not None:
            _after_recording(engine, sid, rc)
    return rc


def _live_session(args: argparse.Namespace) -> tuple[Engine | None, int]:
    """The session this recording writes, made here so the live findings watch exactly it (other
    recorders may write the same store). An in-memory store is the addon's own: it makes the session."""
    from authtrace.store import clock, db

    if db.url_for(args.db).endswith((":memory:", "sqlite://")):
        return None, 0
    engine = _open(args.db)
    name = args.session or f"live {clock.stamp(time.time())}"
    return engine, db.new_session(engine, name, "live", "live")


def _after_recording(engine: Engine, sid: int, rc: int) -> None:
    """Keep the findings of the recorded session (so `sessions` lists and filters them); a proxy
    that never started leaves no empty session behind."""
    from authtrace.reports.diagnose import analyse
    from authtrace.store import db

    try:
        session = db.load_session(engine, sid)
        if session is None:
            return
        if rc != 0 and session.hops == 0:
            db.delete_sessions(engine, [sid])
            return
        a = analyse(engine, session)
        print(f"authtrace: session {sid}: {len(a.hops)} hops, {len(a.findings)} finding(s); "
              f"`authtrace report {sid}` writes its timeline", flush=True)
    except Exception as e:  # noqa: BLE001 - the hops are stored; the report recomputes what failed here
        _say(f"could not keep the findings of session {sid} ({type(e).__name__}); `authtrace report {sid}` "
             "computes them.")


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

    p = sub.add_parser("env", help="print proxy and CA environment lines for a shell (eval \"$(authtrace env)\")")
    p.add_argument("--listen-port", type=int, default=8080)
    p.add_argument("--confdir", default="~/.mitmproxy", help="mitmproxy's configuration directory")
    p.set_defaults(fn=cmd_env)

    p = with_db(sub.add_parser("sessions", help="list capture sessions, filtered by what their hops name",
                               epilog="Example: authtrace sessions --host '*.ai.azure.com' --finding "
                                      "redirect_uri_mismatch --since 7d"))
    _filter_options(p)
    p.add_argument("--limit", type=int, default=200, metavar="N", help="the newest N matching sessions "
                   "(default 200; 0: all)")
    p.add_argument("--json", action="store_true", help="one JSON array of sessions")
    p.set_defaults(fn=cmd_sessions)

    p = with_db(sub.add_parser("find", help="every session and hop where a code, token or cookie appears",
                               epilog="Example: authtrace find code#3f9a1c20e4   (or: authtrace find - < token.txt)"))
    p.add_argument("fingerprint", metavar="FINGERPRINT",
                   help="as a report prints it (code#3f9a1c20e4), its 10 hex digits, or - to read a raw value "
                        "from standard input")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=cmd_find)

    p = with_db(sub.add_parser("prune", help="delete sessions whose last hop is older than an age",
                               epilog="Example: authtrace prune --older-than 30d --dry-run"))
    p.add_argument("--older-than", required=True, metavar="AGE", help="30d, 12h, 2w, ...")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.set_defaults(fn=cmd_prune)

    p = with_db(sub.add_parser("delete", help="delete capture sessions and everything kept for them",
                               epilog="Example: authtrace delete 12 13"))
    p.add_argument("sessions", nargs="+", type=int, metavar="SESSION")
    p.set_defaults(fn=cmd_delete)

    p = sub.add_parser("db", help="the store itself", epilog="Example: authtrace db upgrade --db authtrace.db")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    p = with_db(dbsub.add_parser("upgrade", help="bring the store's schema to this version, converting old "
                                                 "data (back the store up first)"))
    p.set_defaults(fn=cmd_db_upgrade)

    p = with_db(sub.add_parser("serve", help="a read-only web viewer over the store",
                               epilog="Example: authtrace serve --db postgresql://support@db/authtrace"))
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs the access token it prints)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--redact-pii", action="store_true", help="mask email, upn, name, oid and IP addresses")
    p.set_defaults(fn=cmd_serve)
    return ap


def _filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="a host the session's hops went to (* as a wildcard: '*.ai.azure.com')")
    p.add_argument("--client-id", help="a client_id the session's hops sent")
    p.add_argument("--tenant", help="an Entra tenant (path segment or a token's tid)")
    p.add_argument("--finding", metavar="KIND", help="a finding kind of the session (reused_code, ...)")
    p.add_argument("--since", metavar="WHEN", help="first hop at or after: an age (7d, 12h) or a UTC date/time")
    p.add_argument("--until", metavar="WHEN", help="first hop before: an age or a UTC date/time")
    p.add_argument("--text", metavar="TEXT", help="free text in the name, source, hosts, client ids, errors or "
                                                  "findings")


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
