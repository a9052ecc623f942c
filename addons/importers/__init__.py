"""Offline capture files -> the same hop builder as live capture, into a new capture session.

`sniff` tells a HAR from a mitmproxy flow file; `har` picks the few auth entries out of a parsed
HAR; `mitm` streams a flow file with mitmproxy's own reader. A file that is no capture raises
`CaptureError` before any session is made; a damaged one keeps every hop before the damage and says
what happened in `ImportResult.problem`.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from authtrace.addons.context import CaptureContext, SamlKeys
from authtrace.addons.hops import exchange_to_hops, flow_to_hops
from authtrace.addons.importers.har import har_entries, har_exchanges
from authtrace.addons.importers.mitm import mitm_flows
from authtrace.addons.importers.sniff import CaptureError, Progress, sniff
from authtrace.addons.message import Exchange
from authtrace.store import db
from authtrace.store.records import Hop

__all__ = ["CaptureError", "ImportResult", "import_file", "sniff"]
log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class ImportResult:
    session_id: int
    path: str
    flows: int
    hops: int
    skipped: int  # entries that could not be turned into a flow
    problem: str | None  # set when the file was damaged: hops before the damage are kept
    decoder_errors: int = 0  # flows the hop builder failed on: authtrace bugs, counted and logged


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a HAR is read: a parsed 100 MB HAR is a million acyclic
    objects that each collection would walk again (a third of a realistic import's time). Cycles made
    meanwhile are collected when it is back on. Not for flow files: mitmproxy's flows hold cycles, and
    a streamed 20k-flow file would keep every one of them (+400 MB measured)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def import_file(engine: Engine, path: str, progress: Progress | None = None,
                saml_trust: Sequence[str] = ()) -> ImportResult:
    """Import one file into a new capture session. `saml_trust`: files of SAML certificates or metadata
    (`--saml-cert`) that signatures are checked with, beside what metadata in the capture teaches."""
    kind = sniff(path)
    if kind != "har":  # a flow file is streamed; its flows hold cycles the collector must free
        return _import(engine, path, kind, progress, saml_trust)
    with _collector_paused():
        return _import(engine, path, kind, progress, saml_trust)


def _import(engine: Engine, path: str, kind: str, progress: Progress | None,
            saml_trust: Sequence[str]) -> ImportResult:
    har = har_entries(path) if kind == "har" else None
    ctx = CaptureContext(db.fingerprint_key(engine), SamlKeys.from_files(saml_trust))
    sid = db.new_session(engine, os.path.basename(path), os.path.abspath(path), kind)
    flows = hops = skipped = bugs = 0
    batch: list[Hop] = []
    problem = None

    def flush() -> None:
        nonlocal batch
        db.write_hops(engine, sid, batch)
        batch = []
        updates = ctx.signatures.take_updates()
        if updates:
            db.set_signatures(engine, sid, updates)

    source = har_exchanges(har[0], har[1], ctx, progress) if har else mitm_flows(path, progress)
    try:
        for item in source:
            if item is None:  # an entry that could not become a flow
                skipped += 1
                continue
            if isinstance(item, int):  # entries passed over by the pre-filter
                flows += item
                continue
            flows += 1
            try:
                new = exchange_to_hops(item, ctx) if isinstance(item, Exchange) else flow_to_hops(item, ctx)
            except Exception:  # an authtrace bug loses this entry only, never the file
                bugs += 1
                log.exception("authtrace bug: could not decode an exchange with %s",
                              item.host if isinstance(item, Exchange) else item.request.pretty_host)
                continue
            hops += len(new)
            batch.extend(new)
            if len(batch) >= BATCH:
                flush()
    except CaptureError as e:
        problem = str(e)
    finally:
        flush()
        db.update_session(engine, sid, flows_seen=flows, problem=problem)
    return ImportResult(sid, path, flows, hops, skipped, problem, bugs)
