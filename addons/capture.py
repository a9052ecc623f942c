"""The mitmproxy addon. Load it with `mitmdump -s addons/capture.py` (or `authtrace record`).

Hooks hand every finished flow (`response`, `error`) to `flow_to_hops`; flows still open when the
proxy stops are handed over at `done` without a response, so a killed exchange is still evidence.
Writes go to a background thread (HopWriter), so the proxy's event loop never waits on disk.
"""
from __future__ import annotations

import bisect
import logging
import sys
import time
from typing import Any

from mitmproxy import ctx, http
from sqlalchemy.engine import Engine

from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops
from authtrace.addons.launch import Launcher
from authtrace.store import clock, db
from authtrace.store.records import Hop
from authtrace.store.writer import HopWriter

log = logging.getLogger(__name__)


def hop_line(hop: Hop) -> str:
    """One terminal line per hop: number, time, role, host+path, status, fingerprints, error. Never a secret."""
    status = str(hop.status) if hop.status is not None else "---"
    bits = [f"#{hop.number:<4}", clock.time_of_day(hop.started), f"{hop.role:<9}", f"{hop.method:<6}", f"{status:>3}",
            f"{hop.host}{hop.path}"]
    if hop.code_fp:
        bits.append(hop.code_fp)
    if hop.state:
        s = hop.state
        bits.append(f"state={s[:12]}{'…' if len(s) > 12 else ''}")
    err = hop.error
    if err:
        d = err.error_description or err.message
        bits.append(f"! {err.error or 'error'}" + (f": {d[:100]}" if d else ""))
    return "  ".join(bits)


class AuthTrace:
    def __init__(self) -> None:
        self.writer: HopWriter | None = None
        self.context: CaptureContext | None = None
        self.engine: Engine | None = None
        self.session_id: int | None = None
        self.open: dict[str, http.HTTPFlow] = {}
        self.flows_seen = 0
        self.starts: list[float] = []  # start times of the hops stored so far: their numbers

    def load(self, loader: Any) -> None:
        loader.add_option("authtrace_db", str, db.DEFAULT_DB, "authtrace: database file or SQLAlchemy URL.")
        loader.add_option("authtrace_session", str, "", "authtrace: name of the capture session.")
        loader.add_option("authtrace_print", bool, True, "authtrace: print one line per auth hop.")
        loader.add_option("authtrace_session_id", int, 0,
                          "authtrace: record into this existing session (`authtrace record` makes it first).")

    def running(self) -> None:
        try:
            self.engine = db.open_db(ctx.options.authtrace_db)
            name = ctx.options.authtrace_session or f"live {clock.stamp(time.time())}"
            self.session_id = ctx.options.authtrace_session_id or db.new_session(self.engine, name, "live", "live")
            self.context = CaptureContext(db.fingerprint_key(self.engine))
        except db.DatabaseError as e:
            print(f"authtrace: {e}", file=sys.stderr)
            ctx.master.shutdown()  # type: ignore[no-untyped-call]
            return
        self.writer = HopWriter(self.engine, self.session_id, on_stored=self._stored)
        print(f"authtrace: recording session {self.session_id} into {db.shown(ctx.options.authtrace_db)}", flush=True)

    def _stored(self, batch: list[Hop]) -> None:
        """Number the stored hops by time order so far (what `report` will say, unless an earlier
        request finishes later) and print them."""
        for h in sorted(batch, key=lambda h: h.started):
            bisect.insort(self.starts, h.started)
            h.number = bisect.bisect_right(self.starts, h.started)
            if ctx.options.authtrace_print:
                print(hop_line(h), flush=True)

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
        except Exception:
            log.exception("authtrace bug: could not decode a flow to %s", flow.request.pretty_host)
            return
        if hops:
            self.writer.put(hops)
        updates = self.context.signatures.take_updates()
        if updates and self.engine is not None and self.session_id is not None:
            engine, sid = self.engine, self.session_id
            self.writer.call(lambda: db.set_signatures(engine, sid, updates))

    def done(self) -> None:
        if self.writer is None:
            return
        for flow in list(self.open.values()):  # ended without a response: still evidence
            if flow.response is None and flow.request is not None:
                self._finish(flow)
        engine, sid, seen = self.engine, self.session_id, self.flows_seen
        if engine is not None and sid is not None:
            self.writer.call(lambda: db.update_session(engine, sid, flows_seen=seen))
        self.writer.close()
        self.writer = None


addons = [AuthTrace(), Launcher()]
