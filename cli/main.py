"""Command line. Each command maps to one library call; user mistakes get one sentence and exit 2."""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.engine import Engine

from authtrace import __version__

DEFAULT_DB = "authtrace.db"
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


def _open_existing(db_path: str) -> Engine:
    """A store that must already exist: reading commands never create one."""
    if "://" not in db_path and not os.path.exists(db_path):
        _say(f"no database at {db_path}: record or import first (`authtrace record`, `authtrace import FILE`), "
             "or name one with --db or AUTHTRACE_DB.")
        raise SystemExit(EXIT_BAD_INPUT)
    return _open(db_path)


def _roles_summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{r} {n}" for r, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _saml_trust(paths: list[str] | None) -> list[str]:
    """The `--saml-cert` files, each checked once: a file that holds no certificate is one sentence, exit 2."""
    from authtrace.addons.saml import trust_from_file

    for p in paths or []:
        try:
            trust_from_file(p)
        except ValueError as e:
            _say(str(e))
            raise SystemExit(EXIT_BAD_INPUT) from None
    return list(paths or [])


def _import_each(engine: Engine, files: list[str], failed: list[str], saml_trust: list[str] | None = None
                 ) -> Iterator[tuple[str, Any]]:
    """Import each file into its own session; unusable files are reported in one sentence and skipped."""
    from authtrace.addons.importers import CaptureError, import_file

    trust = _saml_trust(saml_trust)
    for path in files:
        try:
            res = import_file(engine, path, _progress_bar(os.path.basename(path)), trust)
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
    for path, res in _import_each(engine, args.files, failed, args.saml_cert):
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

    engine = _open_existing(args.db)
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

    engine = _open_existing(args.db)
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
    engine = _open_existing(args.db)
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

    engine = _open_existing(args.db)
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


class _Terminal(logging.Handler):
    """authtrace's own log lines as plain terminal lines under `record`: hops and findings on
    stdout, errors on stderr (mitmproxy's own log stays at its termlog verbosity)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.ERROR else sys.stdout
        try:
            print(record.getMessage(), file=stream, flush=True)
        except (OSError, ValueError):  # a closed terminal must not stop the capture
            pass


def _log_to_terminal() -> None:
    logger = logging.getLogger("authtrace")
    logger.handlers[:] = [_Terminal()]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _listen_problem(host: str, port: int) -> str | None:
    """Why the proxy could not listen on host:port, in one sentence naming our own flags; None if it can.
    Binds as asyncio's server does (SO_REUSEADDR on POSIX), so only a real listener counts as busy."""
    import errno
    import socket

    if port == 0:
        return None
    where = f"{host or '*'}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot listen on {where}: {e.strerror}; give an address of this machine with --listen-host."
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            if os.name == "posix":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError as e:
                if e.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                    return (f"port {port} is already in use on {host or 'this machine'}: choose another with "
                            f"--listen-port N (--listen-port 0 picks a free one).")
                return f"cannot listen on {where}: {e.strerror}; choose another --listen-host or --listen-port."
    return None


def cmd_record(args: argparse.Namespace) -> int:
    from mitmproxy.tools.main import mitmdump

    from authtrace import addon
    from authtrace.addons import launch

    if not 0 <= args.listen_port <= 65535:
        _say(f"--listen-port wants a port number from 0 to 65535, got {args.listen_port}.")
        return EXIT_BAD_INPUT
    problem = _listen_problem(args.listen_host, args.listen_port)
    if problem:
        _say(problem)
        return EXIT_BAD_INPUT
    _open(args.db).dispose()  # a database we cannot use: one sentence before the proxy starts
    argv = ["-s", addon.__file__, "--listen-host", args.listen_host, "--listen-port", str(args.listen_port),
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
    argv += [a for p in _saml_trust(args.saml_cert) for a in ("--set", f"authtrace_saml_cert={os.path.abspath(p)}")]
    argv += args.extra
    _log_to_terminal()  # the addon logs the address the proxy really bound, each hop and each finding
    try:
        rc = int(mitmdump(argv) or 0)
    except SystemExit as e:  # mitmproxy exits 1 on an error logged while starting (already said)
        rc = EXIT_BAD_INPUT if e.code else 0
    return EXIT_BAD_INPUT if rc or launch.problems else 0


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
    from authtrace.reports.terminal import finding_line, use_colour
    from authtrace.store import db

    expect = _expect(args.expect_audience)
    with tempfile.TemporaryDirectory(prefix="authtrace-") as tmp:
        engine = _open(args.db or os.path.join(tmp, "check.db"))
        failed: list[str] = []
        rc = 0
        for path, res in _import_each(engine, args.files, failed, args.saml_cert):
            session = db.load_session(engine, res.session_id)
            assert session is not None
            a = analyse(engine, session, expect)
            if args.json:
                print(json.dumps(to_json(a), ensure_ascii=False))
            else:
                print(f"{path}: {len(a.hops)} auth hops, {len(a.findings)} finding(s)")
                for f in a.findings:
                    print("  " + finding_line(f, use_colour(sys.stdout)))
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


def _output_problem(path: str) -> str | None:
    """Why a report cannot be written to path, in one sentence; None when it can."""
    if os.path.isdir(path):
        return f"{path} is a folder: give a file name, e.g. -o {os.path.join(path, 'timeline.html')}."
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"cannot write {path}: the folder {folder} does not exist."
    if not os.access(folder, os.W_OK):
        return f"cannot write {path}: the folder {folder} is not writable."
    return None


def _write_page(html: str, path: str) -> bool:
    """Write a page after the leak check; False (and one sentence) when it must not or cannot be written."""
    from authtrace.reports.html import LeakError, write_report

    try:
        write_report(html, path)
    except LeakError as e:
        _say(f"refusing to write {path}: {e}")
        return False
    except OSError as e:
        _say(f"cannot write {path}: {e.strerror}.")
        return False
    return True


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from authtrace.reports.diagnose import analyse
    from authtrace.reports.jsonout import to_json
    from authtrace.reports.summary import summary_text
    from authtrace.store import db

    if args.session is not None and args.session < 1:
        _say(f"session ids start at 1, got {args.session}: `authtrace sessions` lists them.")
        return EXIT_BAD_INPUT
    out = args.output
    if out and not (args.json or args.summary):
        problem = _output_problem(out)
        if problem:
            _say(problem)
            return EXIT_BAD_INPUT
    engine = _open_existing(args.db)
    session = db.load_session(engine, args.session)
    if session is None:
        _say(f"no capture session {args.session} in {args.db}: `authtrace sessions --db {args.db}` lists them."
             if args.session else
             f"{args.db} holds no capture session yet: run `authtrace record` or `authtrace import FILE`.")
        return EXIT_BAD_INPUT
    a = analyse(engine, session, _expect(args.expect_audience))
    rc = EXIT_BUG if _bugs(a) else 0
    if args.json:
        print(json.dumps(to_json(a, args.redact_pii), ensure_ascii=False, indent=2))
        return rc
    if args.summary:
        print(summary_text(a, args.redact_pii), end="")
        return rc
    from authtrace.reports.html import render_html

    out = out or f"authtrace-{session.id}.html"
    if not _write_page(render_html(a, redact_pii=args.redact_pii), out):
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
        if sid < 1:
            _say(f"{label}: session ids start at 1, got {arg}: `authtrace sessions --db {db_path}` lists them.")
            raise SystemExit(EXIT_BAD_INPUT)
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
    problem = _output_problem(args.output) if args.output else None
    if problem:
        _say(problem)
        return EXIT_BAD_INPUT
    by_id = any(x.isdigit() and not os.path.exists(x) for x in (args.good, args.bad))
    with tempfile.TemporaryDirectory(prefix="authtrace-") as tmp:
        # one store, so both sides share one fingerprint key; a store named for its sessions must exist
        engine = (_open_existing(args.db) if args.db and by_id else _open(args.db or os.path.join(tmp, "diff.db")))
        try:
            good, good_source, rc_good = _diff_side(engine, "GOOD", args.good, args.db, expect)
            bad, bad_source, rc_bad = _diff_side(engine, "BAD", args.bad, args.db, expect)
            c = compare(good, bad, good_source, bad_source)
        finally:
            engine.dispose()
    rc = max(rc_good, rc_bad)
    if args.output:
        from authtrace.reports.diff_html import render_diff_html

        if not _write_page(render_diff_html(c, redact_pii=args.redact_pii), args.output):
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
    from authtrace.addons.launch import ca_file, proxy_env, proxy_url, shell_lines, unset_lines

    if args.unset:
        print("\n".join(unset_lines(os.environ, args.shell)))
        return 0
    fresh = not os.path.exists(ca_file(args.confdir))
    try:
        values = proxy_env(proxy_url(args.listen_host, args.listen_port), args.confdir)
    except OSError as e:
        _say(f"cannot write the CA bundle into {args.confdir}: {e.strerror}.")
        return EXIT_BAD_INPUT
    if fresh:
        _say(f"created mitmproxy's CA in {args.confdir} (authtrace record and mitmproxy use it from now on).")
    if os.environ.get("NO_PROXY") or os.environ.get("no_proxy"):
        _say("NO_PROXY is set in this shell: requests to the hosts it lists bypass the proxy and are not recorded.")
    print("\n".join(shell_lines(values, os.environ, args.shell)))
    return 0


def cmd_addon_path(args: argparse.Namespace) -> int:
    import importlib.util

    spec = importlib.util.find_spec("authtrace.addon")
    assert spec is not None and spec.origin is not None
    print(spec.origin)
    return 0


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's default shown when it has one worth saying; examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text \
                and action.option_strings:
            text += " (default: %(default)s)"
        return text


EXAMPLES = {
    "record": """examples:
  authtrace record --browser --url https://your.app/      # a clean, proxied Chromium; sign in as usual
  authtrace record --app "python app.py" --browser       # the app's back channel and the browser together
  eval "$(authtrace env)"; authtrace record               # any program in that shell, through the proxy""",
    "import": """examples:
  authtrace import support-ticket.har
  authtrace import teams.har playground.har --db team.db""",
    "check": """examples:
  authtrace check capture.har                # exit 0 clean, 1 findings, 2 unusable input, 3 authtrace bug
  authtrace check capture.har --json | jq '.findings[].title'""",
    "report": """examples:
  authtrace report                           # the latest session as authtrace-<id>.html
  authtrace report 3 -o ticket-1234.html --redact-pii
  authtrace report --summary                 # plain text to paste into a ticket
  authtrace report --json""",
    "diff": """examples:
  authtrace diff playground.har teams.har    # exit 0 nothing relevant differs, 1 something does, 2 unusable input
  authtrace diff 3 5 --db support.db -o diff.html --redact-pii
  authtrace diff chrome.har webview.mitm --json | jq '.differences[0]'""",
    "sessions": """examples:
  authtrace sessions --db team.db
  authtrace sessions --host '*.ai.azure.com' --finding redirect_uri_mismatch --since 7d
  authtrace sessions --client-id 1111-2222 --text AADSTS50011 --json""",
    "find": """examples:
  authtrace find code#3f9a1c20e4             # every capture and hop where this code appears
  authtrace find - < token.txt               # a raw value, fingerprinted with the store's key""",
    "serve": """examples:
  authtrace serve --db postgresql://support@db.internal/authtrace      # http://127.0.0.1:8000/
  authtrace serve --host 0.0.0.0 --port 8443  # other machines: every request needs the printed token""",
    "prune": """examples:
  authtrace prune --older-than 30d --dry-run
  authtrace prune --older-than 30d""",
    "delete": """example:
  authtrace delete 12 13""",
    "db": """example:
  authtrace db upgrade --db old-round1.db    # back the store up first""",
    "env": """examples:
  eval "$(authtrace env)"                    # this shell's programs use the proxy and trust its CA
  eval "$(authtrace env --unset)"            # and back""",
    "addon-path": 'example:\n  mitmweb -s "$(authtrace addon-path)"',
}


SAML_CERT_HELP = ("SAML: a certificate (PEM/DER) of the identity provider, or a metadata file, to check signatures "
                  "with (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="authtrace", formatter_class=_Help,
        description="Shows exactly where a browser sign-in breaks: record or import the traffic, read the "
                    "findings, share one HTML timeline.",
        epilog="The store is authtrace.db in this folder unless --db or AUTHTRACE_DB names another (a file or an "
               "SQLAlchemy URL). `authtrace COMMAND --help` shows each command's options and examples.")
    ap.add_argument("--version", action="version", version=f"authtrace {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", title="commands, in the order of the work")
    default_db = os.environ.get("AUTHTRACE_DB", DEFAULT_DB)

    def command(name: str, help: str, fn: Callable[[argparse.Namespace], int], db: bool = True
                ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=EXAMPLES.get(name),
                           formatter_class=_Help)
        if db:
            p.add_argument("--db", default=default_db, help="database file or SQLAlchemy URL (env AUTHTRACE_DB)")
        p.set_defaults(fn=fn)
        return p

    p = command("record", "run the proxy and record sign-in hops as they happen", cmd_record)
    p.add_argument("--listen-host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1: only this machine can use the proxy)")
    p.add_argument("--listen-port", type=int, default=8080, help="port to listen on (0: any free port)")
    p.add_argument("--session", help="name for this capture session (default: live <UTC time>)")
    p.add_argument("--save-flows", metavar="FILE", help="also save the raw flows (mitmproxy format; holds secrets)")
    p.add_argument("--browser", action="store_true", help="open a clean Chromium/Chrome/Edge already using the proxy")
    p.add_argument("--url", help="page the browser opens first (with --browser)")
    p.add_argument("--browser-arg", action="append", metavar="ARG", help="extra browser argument (repeatable)")
    p.add_argument("--app", metavar="CMD", help="run CMD with HTTPS_PROXY and the CA set, so its back channel is "
                                                "recorded too (with --browser: both); recording stops when it exits")
    p.add_argument("--saml-cert", action="append", metavar="FILE", help=SAML_CERT_HELP)
    p.add_argument("extra", nargs="*", help="after --: extra mitmdump arguments")

    p = command("import", "import HAR or mitmproxy flow files, one session each", cmd_import)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--saml-cert", action="append", metavar="FILE", help=SAML_CERT_HELP)

    p = command("check", "import captures into a throwaway database and print the findings (exit 1 if any)",
                cmd_check, db=False)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--db", default=os.environ.get("AUTHTRACE_DB"),
                   help="keep the imported hops in this database (env AUTHTRACE_DB; default: a temporary one)")
    p.add_argument("--json", action="store_true", help="one JSON object per file (docs/report.schema.json)")
    p.add_argument("--saml-cert", action="append", metavar="FILE", help=SAML_CERT_HELP)
    p.add_argument("--expect-audience", action="append", metavar="HOST=AUD",
                   help="the audience your own API at HOST accepts (repeatable; HOST may be *.domain)")

    p = command("report", "write the shareable HTML timeline of a session (or its JSON, or a summary)", cmd_report)
    p.add_argument("session", nargs="?", type=int, help="session id (default: the latest)")
    p.add_argument("-o", "--output", help="HTML file (default: authtrace-<session>.html)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON (docs/report.schema.json)")
    p.add_argument("--summary", action="store_true", help="print the plain-text summary for a ticket")
    p.add_argument("--redact-pii", action="store_true", help="mask email, upn, name, oid and IP addresses")
    p.add_argument("--expect-audience", action="append", metavar="HOST=AUD",
                   help="the audience your own API at HOST accepts (repeatable)")

    p = command("diff", "compare a working sign-in (GOOD) with a failing one (BAD): what differs, the cause of "
                        "BAD's findings first (exit 1 if anything relevant differs)", cmd_diff, db=False)
    p.add_argument("good", metavar="GOOD", help="capture file (HAR or .mitm), or a session id with --db")
    p.add_argument("bad", metavar="BAD", help="capture file (HAR or .mitm), or a session id with --db")
    p.add_argument("--db", default=os.environ.get("AUTHTRACE_DB"),
                   help="the database of the sessions named by id; files are imported into it too (env "
                        "AUTHTRACE_DB; default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("-o", "--output", metavar="FILE", help="write the comparison as one HTML page")
    p.add_argument("--redact-pii", action="store_true", help="mask email, upn, name, oid and IP addresses")
    p.add_argument("--steps", action="store_true", help="also print the aligned steps")
    p.add_argument("--expect-audience", action="append", metavar="HOST=AUD",
                   help="the audience your own API at HOST accepts (repeatable)")

    p = command("sessions", "list the capture sessions of a store, filtered by what their hops name", cmd_sessions)
    _filter_options(p)
    p.add_argument("--limit", type=int, default=200, metavar="N",
                   help="the newest N matching sessions (0: all)")
    p.add_argument("--json", action="store_true", help="one JSON array of sessions")

    p = command("env", "print shell lines that route a program through the proxy", cmd_env, db=False)
    p.add_argument("--listen-host", default="127.0.0.1", help="the proxy's address")
    p.add_argument("--listen-port", type=int, default=8080, help="the proxy's port")
    p.add_argument("--confdir", default="~/.mitmproxy", help="mitmproxy's configuration directory")
    p.add_argument("--unset", action="store_true", help="print the lines that undo it")
    p.add_argument("--shell", choices=("sh", "fish", "powershell"), default="powershell" if os.name == "nt" else "sh",
                   help="syntax of the lines")

    p = command("find", "list every session and hop where a code, token or cookie appears", cmd_find)
    p.add_argument("fingerprint", metavar="FINGERPRINT",
                   help="as a report prints it (code#3f9a1c20e4), its 10 hex digits, or - to read a raw value "
                        "from standard input")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command("serve", "serve a read-only web viewer over the store", cmd_serve)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1: this machine only; any other needs the access token "
                        "it prints)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--redact-pii", action="store_true", help="mask email, upn, name, oid and IP addresses")

    p = command("prune", "delete the sessions whose last hop is older than an age", cmd_prune)
    p.add_argument("--older-than", required=True, metavar="AGE", help="30d, 12h, 2w, ...")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")

    p = command("delete", "delete capture sessions and everything kept for them", cmd_delete)
    p.add_argument("sessions", nargs="+", type=int, metavar="SESSION")

    p = command("db", "look after the store itself", cmd_db_upgrade, db=False)
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dbsub.add_parser("upgrade", help="bring the store's schema to this version, converting old data (back "
                                          "the store up first)", epilog=EXAMPLES["db"], formatter_class=_Help)
    up.add_argument("--db", default=default_db, help="database file or SQLAlchemy URL (env AUTHTRACE_DB)")
    command("addon-path", "print the mitmproxy addon file, for mitmdump/mitmweb -s", cmd_addon_path, db=False)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `authtrace`: what it can do
        parser.print_help()
        return 0
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
