"""Live capture's writes, off the proxy's event loop.

`HopWriter` takes hops from a queue on a background thread and stores them in batches (every
`interval` seconds, or 500 hops, and at close). A hop the store refuses is retried alone so it
never takes its batch with it; the refusal is logged, and the other hops are kept.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.engine import Engine

from authtrace.store.db import write_hops
from authtrace.store.records import Hop

log = logging.getLogger(__name__)
BATCH = 500


class HopWriter:
    def __init__(self, engine: Engine, session_id: int, interval: float = 0.5,
                 on_stored: Callable[[list[Hop]], None] | None = None):
        self.engine, self.session_id, self.interval, self.on_stored = engine, session_id, interval, on_stored
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="authtrace-writer", daemon=True)
        self._thread.start()

    def put(self, hops: Iterable[Hop]) -> None:
        for h in hops:
            self._q.put(("hop", h))

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on the writer thread after everything queued before it is stored."""
        self._q.put(("call", fn))

    def close(self) -> None:
        self._q.put(("stop", None))
        self._thread.join(timeout=30)

    def _store(self, batch: list[Hop]) -> None:
        try:
            write_hops(self.engine, self.session_id, batch)
        except Exception:  # noqa: BLE001 - one bad hop must not take the batch with it: retry one by one
            kept = []
            for h in batch:
                try:
                    write_hops(self.engine, self.session_id, [h])
                    kept.append(h)
                except Exception as e:  # noqa: BLE001 - the store refused this hop; say so, keep the rest
                    log.error("authtrace: could not store a %s hop: %s: %s", h.role, type(e).__name__,
                              str(e).splitlines()[0][:200] if str(e) else "")
            batch = kept
        if self.on_stored and batch:
            try:
                self.on_stored(batch)
            except Exception:  # a printing failure is not worth the capture
                log.exception("authtrace: could not report stored hops")

    def _run(self) -> None:
        pending: list[Hop] = []
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                what, item = self._q.get(timeout=timeout)
            except queue.Empty:
                what, item = "flush", None
            if what == "hop":
                assert isinstance(item, Hop)
                pending.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.interval
                if len(pending) < BATCH:
                    continue
            if pending:
                batch, pending, deadline = pending, [], None
                self._store(batch)
            if what == "call":
                try:
                    item()
                except Exception as e:  # noqa: BLE001 - a deferred store update failed: say so
                    log.error("authtrace: %s: %s", type(e).__name__, e)
            if what == "stop":
                return
