"""The mitmproxy addon. Load it with `mitmdump -s addons/capture.py` (or `authtrace record`).

Hooks hand every finished flow (`response`, `error`) to `flow_to_hops`; flows still open when the
proxy stops are handed over at `done` without a response, so a killed exchange is still evidence.
Writes go to a background thread (HopWriter), so the proxy's event loop never waits on disk.
"""
from __future__ import annotations

import logging
import sys
import time

from mitmproxy import ctx, http

try:
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
    def __init__(self) -> None:
        self.writer: db.HopWriter | None = None
        self.context: Context | None = None
        self.engine = None
        self.session_id: int | None = None
        self.open: dict[str, http.HTTPFlow] = {}
        self.flows_seen = 0

    def load(self, loader) -> None:
        loader.add_option("authtrace_db", str, db.DEFAULT_DB, "authtrace: database file or SQLAlchemy URL.")
        loader.add_option("authtrace_session", str, "", "authtrace: name of the capture session.")
        loader.add_option("authtrace_print", bool, True, "authtrace: print one line per auth hop.")

    def running(self) -> None:
        try:
            self.engine = db.open_db(ctx.options.authtrace_db)
            name = ctx.options.authtrace_session or time.strftime("live %Y-%m-%d %H:%M:%S")
            self.session_id = db.new_session(self.engine, name, "live", "live")
            self.context = Context(db.fingerprint_key(self.engine))
        except db.DatabaseError as e:
            log.error("authtrace: %s", e)
            ctx.master.shutdown()
            return
        self.writer = db.HopWriter(self.engine, self.session_id, on_stored=self._stored)
        log.info("authtrace: recording session %s into %s", self.session_id, ctx.options.authtrace_db)

    def _stored(self, batch: list[db.NewHop], ids: list[int]) -> None:
        if ctx.options.authtrace_print:
            for h, hid in zip(batch, ids):
                log.info("#%-5d%s", hid, hop_line(h.hop))

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
            self.writer.put(hops)
        updates = self.context.take_signature_updates()
        if updates:
            engine, sid = self.engine, self.session_id
            self.writer.call(lambda: db.set_signatures(engine, sid, updates))

    def done(self) -> None:
        if self.writer is None:
            return
        for flow in list(self.open.values()):  # ended without a response: still evidence
            if flow.response is None and flow.request is not None:
                self._finish(flow)
        engine, sid, seen = self.engine, self.session_id, self.flows_seen
        self.writer.call(lambda: db.update_session(engine, sid, flows_seen=seen))
        self.writer.close()
        self.writer = None


addons = [AuthTrace(), Launcher(), ContentViews()]
