"""Findings while recording, inside mitmproxy: the roof over capture (addons/) and checks (reports/).

`LiveFindings` re-runs the checks over the recording session as hops arrive; a finding is logged once
it has held for two checks in a row (one the next hop explains away is never shown), and the flows
that are its evidence are marked and commented, so mitmweb's `~marked` lists them. It also offers the
commands `authtrace.findings` and `authtrace.report PATH` to mitmproxy's console and mitmweb.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from mitmproxy import command, ctx, exceptions, hooks, types

from authtrace.addons.capture import AuthTrace
from authtrace.addons.comments import add_line
from authtrace.reports.checks import run_checks
from authtrace.reports.diagnose import analyse
from authtrace.reports.html import LeakError, render_html, write_report
from authtrace.reports.terminal import finding_line
from authtrace.store import db
from authtrace.store.records import Finding, Severity

log = logging.getLogger("authtrace.live")
MARKS = {Severity.ERROR: ":exclamation:", Severity.WARNING: ":warning:"}  # mitmproxy's marker names
MAX_LIVE_HOPS = 20000  # beyond this the checks cost the proxy too much CPU: `authtrace report` has them


def finding_text(f: Finding) -> str:
    return "FINDING " + finding_line(f)


class LiveFindings:
    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.stable: dict[tuple[str, str], Finding] = {}

    def load(self, loader: Any) -> None:
        loader.add_option("authtrace_findings", bool, True,
                          "authtrace: check the session while recording; log each finding once it holds and "
                          "mark its evidence flows (~marked).")

    def running(self) -> None:
        self.configure({"authtrace_findings"})

    def configure(self, updated: set[str]) -> None:
        if "authtrace_findings" not in updated:
            return
        if ctx.options.authtrace_findings and self.thread is None:
            self.stop.clear()
            self.thread = threading.Thread(target=self._run, name="authtrace-findings", daemon=True)
            self.thread.start()
        elif not ctx.options.authtrace_findings and self.thread is not None:
            self.done()

    def done(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None

    @staticmethod
    def _capture() -> AuthTrace:
        addon = ctx.master.addons.get("authtrace")
        if not isinstance(addon, AuthTrace) or addon.engine is None or addon.session_id is None:
            raise exceptions.CommandError("authtrace is not recording (see the event log for why)")
        return addon

    def _run(self) -> None:
        pending: set[tuple[str, str]] = set()
        seen, pause, session_id = -1, 2.0, None
        while not self.stop.wait(pause):
            try:
                capture = self._capture()
                assert capture.engine is not None and capture.session_id is not None
                if capture.session_id != session_id:  # a new session (configure): start over
                    session_id, seen, pending, self.stable = capture.session_id, -1, set(), {}
                session = db.load_session(capture.engine, session_id)
                if session is None or session.hops > MAX_LIVE_HOPS or (session.hops == seen and not pending):
                    continue
                seen = session.hops
                started = time.monotonic()
                findings, _ = run_checks(db.load_hops(capture.engine, session_id))
                pause = max(2.0, 5 * (time.monotonic() - started))  # at most ~1/5 of the proxy's CPU
                now = {(f.kind, f.title): f for f in findings}
                for key, f in now.items():
                    if key in pending and key not in self.stable:
                        log.warning("%s", finding_text(f))
                    if key in pending or key in self.stable:
                        self.stable[key] = f
                pending = {k for k in now if k not in self.stable}
                if self.stable:  # evidence of a known finding can grow too: marks follow it
                    marked = list(self.stable.values())
                    ctx.master.event_loop.call_soon_threadsafe(self._mark, capture, marked)
            except exceptions.CommandError:
                continue  # not recording (yet)
            except Exception:  # the capture matters more than the live hint; the report has it all
                log.debug("authtrace: live checks failed", exc_info=True)

    @staticmethod
    def _mark(capture: AuthTrace, findings: list[Finding]) -> None:
        """On the proxy's loop: comment and mark each finding's evidence flows."""
        changed = {}
        for f in findings:
            for h in f.evidence:
                flow = capture.hop_flows.get(h.id) if h.id is not None else None
                if flow is None:
                    continue
                if add_line(flow, finding_text(f)):
                    changed[id(flow)] = flow
                if not flow.marked:
                    flow.marked = MARKS.get(f.severity, ":warning:")
                    changed[id(flow)] = flow
        if changed:
            ctx.master.addons.trigger(hooks.UpdateHook(list(changed.values())))

    @command.command("authtrace.findings")
    def findings(self) -> Sequence[str]:
        """The recording session's findings, one line each (also logged; evidence flows marked)."""
        capture = self._capture()
        capture.flush()
        assert capture.engine is not None and capture.session_id is not None
        found, _ = run_checks(db.load_hops(capture.engine, capture.session_id))
        lines = [finding_text(f) for f in found]
        for line in lines:
            log.warning("%s", line)
        log.info("authtrace: session %s: %d finding(s)", capture.session_id, len(found))
        self._mark(capture, found)
        return lines

    @command.command("authtrace.report")
    def report(self, path: types.Path) -> str:
        """Write the recording session's HTML timeline to path."""
        capture = self._capture()
        capture.flush()
        assert capture.engine is not None and capture.session_id is not None
        session = db.load_session(capture.engine, capture.session_id)
        assert session is not None
        target = os.path.expanduser(path)
        a = analyse(capture.engine, session)
        try:
            write_report(render_html(a), target)
        except LeakError as e:
            raise exceptions.CommandError(f"authtrace: refusing to write {target}: {e}") from e
        except OSError as e:
            raise exceptions.CommandError(f"authtrace: cannot write {target}: {e.strerror}") from e
        summary = f"{target}: {len(a.findings)} finding(s), {len(a.hops)} hops"
        log.info("authtrace: %s", summary)
        return summary
