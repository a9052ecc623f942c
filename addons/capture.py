"""The mitmproxy addon. Load it with `mitmdump -s addons/capture.py` (or `authtrace record`).

Hooks hand every finished flow (`response`, `error`) to `flow_to_hops`; flows still open when the
proxy stops are handed over at `done` without a response, so a killed exchange is still evidence.
Writes go to a background thread (HopWriter), so the proxy's event loop never waits on disk.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence

from mitmproxy import command, ctx, exceptions, hooks, http, types

try:
    from authtrace.addons import live
    from authtrace.addons.hops import Context, flow_to_hops
    from authtrace.addons.launch import Launcher
    from authtrace.addons.views import ContentViews
    from authtrace.store import db
except ModuleNotFoundError as e:  # `-s` into a mitmproxy whose Python lacks authtrace (a standalone binary)
    raise ModuleNotFoundError(
        f"authtrace: {e.name} cannot be imported by the Python that runs this mitmproxy ({sys.executable}): "
        "install authtrace into that environment (pip install <authtrace checkout or wheel>; with pipx: "
        "pipx inject mitmproxy <checkout or wheel>), or run `authtrace record`; mitmproxy's standalone "
        "binaries cannot load it.",
        name=e.name) from e

log = logging.getLogger("authtrace.capture")  # not __name__: `-s` loads this file as `capture`


def hop_line(hop: dict) -> str:
    """One terminal line per hop: time, role, host+path, status, fingerprints, error. Never a secret."""
    t = time.strftime("%H:%M:%S", time.localtime(hop["started"])) + f".{int(hop['started'] % 1 * 1000):03d}"
    status = str(hop["status"]) if hop["status"] is not None else "---"
    bits = [t, f"{hop['role']:<9}", f"{hop['method']:<6}", f"{status:>3}", f"{hop['host']}{hop['path']}"]
    if hop.get("code_fp"):
        bits.append(hop["code_fp"])
    if hop.get("state"):
        s = hop["state"]
        bits.append(f"state={s[:12]}{'…' if len(s) > 12 else ''}")
    err = hop.get("error") or {}
    if err:
        e = err.get("error") or "error"
        d = err.get("error_description") or err.get("message") or ""
        bits.append(f"! {e}" + (f": {d[:100]}" if d else ""))
    return "  ".join(bits)


class AuthTrace:
    """Records every auth hop into the database; comments auth flows, marks evidence of findings."""

    def __init__(self) -> None:
        self.writer: db.HopWriter | None = None
        self.context: Context | None = None
        self.engine = None
        self.session_id: int | None = None
        self.open: dict[str, http.HTTPFlow] = {}
        self.flows_seen = 0
        self.is_running = False
        self.recording_into: tuple[str, str] | None = None  # (database, session name) of the open session
        self.index = live.FlowIndex()
        self.live: live.LiveFindings | None = None

    def load(self, loader) -> None:
        loader.add_option("authtrace_db", str, db.DEFAULT_DB, "authtrace: database file or SQLAlchemy URL.")
        loader.add_option("authtrace_session", str, "", "authtrace: name of the capture session.")
        loader.add_option("authtrace_print", bool, True, "authtrace: log one line per auth hop.")
        loader.add_option("authtrace_findings", bool, True,
                          "authtrace: check the session while recording; log each finding once it holds and "
                          "mark its evidence flows (~marked).")

    def running(self) -> None:
        self.is_running = True
        try:
            self._start_session(ctx.options.authtrace_db, ctx.options.authtrace_session)
        except db.DatabaseError as e:
            log.error("authtrace: %s", e)
            ctx.master.shutdown()

    def configure(self, updated: set[str]) -> None:
        """Option changes at run time: a new database or session name starts a new capture session
        (a database that cannot be used is refused and the current one kept); findings on/off."""
        if not self.is_running:
            return
        wanted = (ctx.options.authtrace_db, ctx.options.authtrace_session)
        if updated & {"authtrace_db", "authtrace_session"} and wanted != self.recording_into:
            try:
                engine = db.open_db(ctx.options.authtrace_db)
            except db.DatabaseError as e:
                raise exceptions.OptionsError(f"authtrace: {e}") from e
            engine.dispose()
            self._end_session()
            self._start_session(ctx.options.authtrace_db, ctx.options.authtrace_session)
        elif "authtrace_findings" in updated:
            if ctx.options.authtrace_findings and self.live is None and self.engine is not None:
                self._start_live()
            elif not ctx.options.authtrace_findings and self.live is not None:
                self.live.stop()
                self.live = None

    def _start_session(self, database: str, name: str) -> None:
        self.engine = db.open_db(database)
        self.session_id = db.new_session(self.engine, name or time.strftime("live %Y-%m-%d %H:%M:%S"), "live",
                                         "live")
        self.context = Context(db.fingerprint_key(self.engine))
        self.flows_seen = 0
        self.writer = db.HopWriter(self.engine, self.session_id, on_stored=self._stored)
        self.recording_into = (database, name)
        log.info("authtrace: recording session %s into %s", self.session_id, database)
        if ctx.options.authtrace_findings:
            self._start_live()

    def _start_live(self) -> None:
        self.live = live.LiveFindings(self.engine, self.session_id, self._on_findings)

    def _stored(self, batch: list[db.NewHop], ids: list[int]) -> None:
        self.index.stored(batch, ids)
        if ctx.options.authtrace_print:
            for h, hid in zip(batch, ids):
                log.info("#%-5d%s", hid, hop_line(h.hop))

    def _on_findings(self, new: list[dict], stable: list[dict]) -> None:
        """From the findings thread: log the new ones, mark evidence on the proxy's loop."""
        for f in new:
            log.warning("%s", live.finding_text(f))
        ctx.master.event_loop.call_soon_threadsafe(self._mark, stable)

    def _mark(self, findings: list[dict]) -> None:
        changed = []
        for f in findings:
            for flow in self.index.flows(live.finding_evidence(f)):
                note = live.finding_text(f)
                if note not in (flow.comment or ""):
                    flow.comment = f"{flow.comment}\n{note}" if flow.comment else note
                    changed.append(flow)
                if not flow.marked:
                    flow.marked = live.finding_marker(f)
                    changed.append(flow)
        if changed:
            ctx.master.addons.trigger(hooks.UpdateHook(list({id(f): f for f in changed}.values())))

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.open[flow.id] = flow

    def response(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def _finish(self, flow: http.HTTPFlow) -> None:
        self.open.pop(flow.id, None)
        if self.context is None or self.writer is None:
            return
        self.flows_seen += 1
        try:
            hops = flow_to_hops(flow, self.context)
        except Exception as e:  # a decoder bug must not stop the capture
            log.warning("authtrace: could not decode a flow to %s: %s", flow.request.pretty_host,
                        type(e).__name__)
            return
        if hops:
            self.index.expect(hops, flow)
            self.writer.put(hops)
            live.set_comment(flow, live.flow_comment(hops))
            if self.is_running:  # tell mitmweb and the console: the flow changed after its hooks ran
                ctx.master.addons.trigger(hooks.UpdateHook([flow]))
        updates = self.context.take_signature_updates()
        if updates:
            engine, sid = self.engine, self.session_id
            self.writer.call(lambda: db.set_signatures(engine, sid, updates))

    def _flush(self, timeout: float = 10) -> None:
        """Wait until every hop handed to the writer is stored."""
        if self.writer is not None:
            stored = threading.Event()
            self.writer.call(stored.set)
            stored.wait(timeout)

    def _session(self) -> tuple[object, int]:
        if self.engine is None or self.session_id is None:
            raise exceptions.CommandError("authtrace is not recording (see the event log for why)")
        self._flush()
        return self.engine, self.session_id

    @command.command("authtrace.findings")
    def findings(self) -> Sequence[str]:
        """The current session's findings, one line each (also logged, evidence flows marked)."""
        engine, sid = self._session()
        found = live.session_findings(engine, sid)
        lines = [live.finding_text(f) for f in found]
        for line in lines:
            log.warning("%s", line)
        log.info("authtrace: session %s: %d finding(s)", sid, len(found))
        self._mark(found)
        return lines

    @command.command("authtrace.report")
    def report(self, path: types.Path) -> str:
        """Write the current session's HTML timeline to path."""
        engine, sid = self._session()
        try:
            summary = live.write_session_report(engine, sid, os.path.expanduser(path))
        except (ValueError, OSError) as e:
            raise exceptions.CommandError(f"authtrace: {e}") from e
        log.info("authtrace: %s", summary)
        return summary

    def _end_session(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.writer is None:
            return
        for flow in list(self.open.values()):  # ended without a response: still evidence
            if flow.response is None and flow.request is not None:
                self._finish(flow)
        self.open.clear()
        engine, sid, seen = self.engine, self.session_id, self.flows_seen
        self.writer.call(lambda: db.update_session(engine, sid, flows_seen=seen))
        self.writer.close()
        self.writer = None
        self.recording_into = None

    def done(self) -> None:
        self.is_running = False
        self._end_session()


addons = [AuthTrace(), Launcher(), ContentViews()]
