"""Live capture's writes, off the proxy's event loop.

`HopWriter` takes hops from the event loop to a background thread and stores them in batches (every
`interval` seconds, or 500 hops, and at close). A hop the store refuses is retried alone so it
never takes its batch with it; the refusal is logged, and the other hops are kept.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.engine import Engine

from authtrace.store.db import write_hops
from authtrace.store.records import Hop

log = logging.getLogger(__name__)
BATCH = 500


class HopWriter:
    """Hands hops from the event loop to a writer thread. A hop costs the loop one append under a lock:
    the thread is woken only for a full batch, a call or the end, and otherwise stores what has
    gathered every `interval` seconds (waking it for each hop cost the loop a thread switch per hop)."""

    def __init__(self, engine: Engine, session_id: int, interval: float = 0.5,
                 on_stored: Callable[[list[Hop]], None] | None = None):
        self.engine, self.session_id, self.interval, self.on_stored = engine, session_id, interval, on_stored
        self._items: list[tuple[str, Any]] = []  # ("hop", Hop), ("call", fn) or ("stop", None), in order
        self._hops = 0  # hops in _items
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="authtrace-writer", daemon=True)
        self._thread.start()

    def put(self, hops: Iterable[Hop]) -> None:
        with self._lock:
            for h in hops:
                self._items.append(("hop", h))
                self._hops += 1
            full = self._hops >= BATCH
        if full:
            self._wake.set()

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on the writer thread after everything queued before it is stored."""
        self._send("call", fn)

    def close(self) -> None:
        self._send("stop", None)
        self._thread.join(timeout=30)

    def _send(self, what: str, item: Any) -> None:
        with self._lock:
            self._items.append((what, item))
        self._wake.set()

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
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                items, self._items, self._hops = self._items, [], 0
            pending: list[Hop] = []
            for what, item in items:
                if what == "hop":
                    pending.append(item)
                    if len(pending) >= BATCH:
                        self._store(pending)
                        pending = []
                    continue
                if pending:
                    self._store(pending)
                    pending = []
                if what == "call":
                    try:
                        item()
                    except Exception as e:  # noqa: BLE001 - a deferred store update failed: say so
                        log.error("authtrace: %s: %s", type(e).__name__, e)
                elif what == "stop":
                    return
            if pending:
                self._store(pending)
