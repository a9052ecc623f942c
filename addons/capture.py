"""The capture addon: every finished flow (`response`, `error`) goes to `flow_to_hops`, its hops to
the store. Flows still open when the proxy stops are handed over at `done` without a response, so a
killed exchange is still evidence. Writes go to a background thread (HopWriter): the proxy's event
loop never waits on the disk.

Shaped like mitmproxy's own addons: options declared in `load` and honoured in `configure` (a new
database or session name starts a new capture session), output through `logging` (mitmweb's event
log, `termlog_verbosity`), each auth flow commented with its role and decoded essentials. The
findings that mark evidence flows are the roof's (`authtrace.live`), which reads `hop_flows`.
Load everything with `mitmdump -s "$(authtrace addon-path)"`.
"""
from __future__ import annotations

import bisect
import logging
import os
import shlex
import threading
import time
import typing
import weakref
from typing import Any

from mitmproxy import ctx, exceptions, http
from sqlalchemy.engine import Engine

from authtrace.addons.comments import flow_comment, set_comment
from authtrace.addons.context import CaptureContext, SamlKeys
from authtrace.addons.hops import flow_to_hops
from authtrace.store import clock, db, saml
from authtrace.store.records import Hop
from authtrace.store.writer import HopWriter

log = logging.getLogger("authtrace.capture")  # not __name__: `-s` loads a file as a module of its own name


def hop_line(hop: Hop) -> str:
    """One terminal line per hop: number, time, role, host+path, status, fingerprints, error. Never a secret."""
    status = str(hop.status) if hop.status is not None else "---"
    bits = [f"#{hop.number:<4}", clock.time_of_day(hop.started), f"{hop.role:<9}", f"{hop.method:<6}", f"{status:>3}",
            f"{hop.host}{hop.path}"]
    if hop.code_fp:
        bits.append(hop.code_fp)
    if hop.state:
        bits.append(f"state={hop.state[:12]}{'…' if len(hop.state) > 12 else ''}")
    for m in (hop.params.saml, hop.answer.saml):
        if m is not None:
            bits.append(saml.brief(m))
    if hop.error:
        d = hop.error.error_description or hop.error.message
        bits.append(f"! {hop.error.error or 'error'}" + (f": {d[:100]}" if d else ""))
    return "  ".join(bits)


class AuthTrace:
    """Records every auth hop of the flows mitmproxy sees into the store, and comments them."""

    def __init__(self) -> None:
        self.writer: HopWriter | None = None
        self.context: CaptureContext | None = None
        self.engine: Engine | None = None
        self.session_id: int | None = None
        self.open: dict[str, http.HTTPFlow] = {}
        self.flows_seen = 0
        self.is_running = False
        self.recording_into: tuple[str, str] | None = None  # (store, session name) of the open session
        self.starts: list[float] = []  # start times of the hops stored so far: their numbers
        self._lock = threading.Lock()
        self._pending: dict[int, http.HTTPFlow] = {}  # id(hop) -> its flow, until the hop is stored
        self.hop_flows: weakref.WeakValueDictionary[int, http.HTTPFlow] = weakref.WeakValueDictionary()

    def load(self, loader: Any) -> None:
        loader.add_option("authtrace_db", str, db.DEFAULT_DB, "authtrace: database file or SQLAlchemy URL.")
        loader.add_option("authtrace_session", str, "", "authtrace: name of the capture session.")
        loader.add_option("authtrace_print", bool, True, "authtrace: log one line per auth hop.")
        loader.add_option("authtrace_saml_cert", typing.Sequence[str], [],
                          "authtrace: SAML certificate or metadata files to check signatures with (--saml-cert).")

    def running(self) -> None:
        self.is_running = True
        try:
            self._start_session(ctx.options.authtrace_db, ctx.options.authtrace_session)
        except db.DatabaseError as e:
            log.error("authtrace: %s", e)
            ctx.master.shutdown()

    def configure(self, updated: set[str]) -> None:
        """A new store or session name at run time starts a new capture session; a store that cannot
        be used is refused (mitmproxy keeps the old value) and the current session goes on. SAML
        certificate files that cannot be used are refused the same way."""
        if "authtrace_saml_cert" in updated:
            try:
                keys = SamlKeys.from_files(ctx.options.authtrace_saml_cert)
            except ValueError as e:
                raise exceptions.OptionsError(f"authtrace: {e}") from e
            if self.context is not None:
                self.context.saml.user = keys.user
                self.context.saml.merge(keys)
        if not self.is_running or not updated & {"authtrace_db", "authtrace_session"}:
            return
        wanted = (ctx.options.authtrace_db, ctx.options.authtrace_session)
        if wanted == self.recording_into:
            return
        try:
            db.open_db(ctx.options.authtrace_db).dispose()
        except db.DatabaseError as e:
            raise exceptions.OptionsError(f"authtrace: {e}") from e
        self._end_session()
        self._start_session(*wanted)

    def _start_session(self, store: str, name: str) -> None:
        engine = db.open_db(store)
        self.engine = engine
        self.session_id = db.new_session(engine, name or f"live {clock.stamp(time.time())}", "live", "live")
        self.context = CaptureContext(db.fingerprint_key(engine), SamlKeys.from_files(ctx.options.authtrace_saml_cert))
        self.flows_seen = 0
        self.starts = []
        self.writer = HopWriter(engine, self.session_id, on_stored=self._stored)
        self.recording_into = (store, name)
        log.info("authtrace: recording session %s into %s", self.session_id, db.shown(store))

    def _stored(self, batch: list[Hop]) -> None:
        """On the writer thread: number the stored hops by time order so far (what `report` will say,
        unless an earlier request finishes later), remember their flows, log them."""
        with self._lock:
            for h in batch:
                flow = self._pending.pop(id(h), None)
                if flow is not None and h.id is not None:
                    self.hop_flows[h.id] = flow
        for h in sorted(batch, key=lambda h: h.started):
            bisect.insort(self.starts, h.started)
            h.number = bisect.bisect_right(self.starts, h.started)
            if ctx.options.authtrace_print:
                log.info("%s", hop_line(h))

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
        except Exception:  # an authtrace bug must not stop the capture; it is logged as one
            log.exception("authtrace bug: could not decode a flow to %s", flow.request.pretty_host)
            return
        if hops:
            with self._lock:
                for h in hops:
                    self._pending[id(h)] = flow
            self.writer.put(hops)
            # the comment is set inside the hook: mitmweb's and the console's view run after script
            # addons and send the flow with it (an UpdateHook here cost every auth hop ≈ 30 µs)
            set_comment(flow, flow_comment(hops))
        updates = self.context.signatures.take_updates()
        if updates and self.engine is not None and self.session_id is not None:
            engine, sid = self.engine, self.session_id
            self.writer.call(lambda: db.set_signatures(engine, sid, updates))

    def flush(self, timeout: float = 10) -> None:
        """Wait until every hop handed to the writer is stored."""
        if self.writer is not None:
            stored = threading.Event()
            self.writer.call(stored.set)
            stored.wait(timeout)

    def _end_session(self) -> None:
        if self.writer is None:
            return
        for flow in list(self.open.values()):  # ended without a response: still evidence
            if flow.response is None and flow.request is not None:
                self._finish(flow)
        self.open.clear()
        engine, sid, seen = self.engine, self.session_id, self.flows_seen
        if engine is not None and sid is not None:
            self.writer.call(lambda: db.update_session(engine, sid, flows_seen=seen))
        self.writer.close()
        self.writer = None
        if engine is not None and sid is not None and self.recording_into is not None:
            store = self.recording_into[0]
            session = db.load_session(engine, sid)
            shown = db.shown(store)  # a URL's password stays off the terminal
            where = "" if store in (db.DEFAULT_DB, os.environ.get("AUTHTRACE_DB")) else f" --db {shlex.quote(shown)}"
            log.info("authtrace: saved session %s into %s: %d auth hops of %d flows; see it with "
                     "`authtrace report %s%s` (HTML) or `authtrace report %s%s --summary`", sid, shown,
                     session.hops if session else 0, seen, sid, where, sid, where)
        self.recording_into = None

    def done(self) -> None:
        self.is_running = False
        self._end_session()
