"""What the capture addon shows inside mitmproxy while it records: a comment on each auth flow
(role and decoded essentials, secrets as fingerprints), findings as they become stable (logged
once, their evidence flows marked so `~marked` lists them), and the session's HTML report.

The checks belong to reports/ (above the addon): `session_findings`, `finding_text` and
`write_session_report` are the only places that reach them, so a change of the findings API
touches only these three small functions.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from authtrace.store import db

log = logging.getLogger("authtrace.live")

MARK_ERROR = ":exclamation:"  # mitmproxy's marker names (mitmproxy.utils.emoji)
MARK_WARNING = ":warning:"


# -- the findings API, in one place ----------------------------------------------------------------
def session_findings(engine: Any, session_id: int) -> list[dict]:
    """The session's findings, as the checks give them today."""
    from authtrace.reports.checks import run_checks

    return run_checks(db.load_hops(engine, session_id), db.load_tokens(engine, session_id))


def finding_key(f: dict) -> tuple[str, str]:
    return f["kind"], f["title"]


def finding_evidence(f: dict) -> list[int]:
    """Hop ids that prove the finding."""
    return [int(e) for e in f.get("evidence") or []]


def finding_marker(f: dict) -> str:
    return MARK_ERROR if str(f.get("severity", "")).lower() == "error" else MARK_WARNING


def finding_text(f: dict) -> str:
    from authtrace.reports.diagnose import finding_line

    return "FINDING " + finding_line(f)


def write_session_report(engine: Any, session_id: int, path: str) -> str:
    """The HTML timeline of the session into path; returns the one-line summary. Raises ValueError
    when the report would carry a secret (nothing is written then)."""
    from authtrace.reports.diagnose import analyse
    from authtrace.reports.render import LeakError, render_html, write_report

    a = analyse(engine, session_id)
    try:
        write_report(render_html(a.session, a.hops, a.tokens, a.findings, notes=a.notes), path)
    except LeakError as e:
        raise ValueError(f"refusing to write {path}: {e}") from e
    return f"{path}: {len(a.findings)} finding(s), {len(a.hops)} hops"


# -- flow comments ---------------------------------------------------------------------------------
def _utc(t: Any) -> str:
    try:
        return datetime.fromtimestamp(float(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(t)


def flow_comment(hops: list[db.NewHop]) -> str:
    """One line per hop the flow became: role, method, status, code and state, tokens (kind
    fingerprint, aud, exp, signature), IdP error. Never a secret: every value is already redacted."""
    lines = []
    for h in hops:
        hop = h.hop
        status = hop.get("status")
        bits = [f"authtrace: {hop.get('role')}", str(hop.get("method") or ""), str(status) if status else "---"]
        if hop.get("code_fp"):
            bits.append(str(hop["code_fp"]))
        if hop.get("state"):
            s = str(hop["state"])
            bits.append(f"state={s[:16]}{'…' if len(s) > 16 else ''}")
        if hop.get("client_id"):
            bits.append(f"client_id={hop['client_id']}")
        for t in h.tokens:
            tok = [str(t.get("fingerprint"))]
            claims = t.get("claims") or {}
            if claims.get("aud"):
                aud = claims["aud"]
                tok.append("aud=" + (",".join(map(str, aud)) if isinstance(aud, list) else str(aud)))
            if claims.get("scp") or claims.get("scope"):
                tok.append(f"scp={claims.get('scp') or claims.get('scope')}")
            if claims.get("exp") is not None:
                tok.append("exp=" + _utc(claims["exp"]))
            if t.get("format") == "jwt":
                tok.append(f"signature {t.get('signature')}")
            bits.append("[" + " ".join(tok) + "]")
        err = hop.get("error") or {}
        if err:
            d = err.get("error_description") or err.get("message") or ""
            bits.append(f"! {err.get('error') or 'error'}" + (f": {str(d)[:120]}" if d else ""))
        lines.append(" ".join(bits))
    return "\n".join(lines)


def set_comment(flow: Any, text: str) -> None:
    """Our comment, replacing an earlier one of ours and keeping the user's own."""
    mine = [ln for ln in (flow.comment or "").splitlines() if not ln.startswith(("authtrace: ", "FINDING "))]
    flow.comment = "\n".join(mine + [text]) if mine else text


# -- live findings ---------------------------------------------------------------------------------
class FlowIndex:
    """Hop id -> the flow it came from (weakly: a flow mitmproxy has let go of costs nothing)."""

    def __init__(self) -> None:
        self._pending: dict[int, Any] = {}  # id(NewHop) -> flow, until the hop has its id
        self._by_hop: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def expect(self, hops: list[db.NewHop], flow: Any) -> None:
        with self._lock:
            for h in hops:
                self._pending[id(h)] = flow

    def stored(self, batch: list[db.NewHop], ids: list[int]) -> None:
        with self._lock:
            for h, hid in zip(batch, ids):
                f = self._pending.pop(id(h), None)
                if f is not None:
                    self._by_hop[hid] = f

    def flows(self, hop_ids: list[int]) -> list[Any]:
        with self._lock:
            return [f for f in (self._by_hop.get(h) for h in hop_ids) if f is not None]


class LiveFindings:
    """Re-runs the checks when new hops arrive; a finding is reported once it has held for two
    checks in a row (one that the next hop explains away is never reported). Checks run at most
    every 2 s, and less often as the session grows, so the proxy in the same process keeps its CPU."""

    def __init__(self, engine: Any, session_id: int, on_stable: Callable[[list[dict], list[dict]], None],
                 min_pause: float = 2.0):
        self.engine, self.session_id, self.on_stable, self.min_pause = engine, session_id, on_stable, min_pause
        self.stable: dict[tuple[str, str], dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="authtrace-findings", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        pending: dict[tuple[str, str], dict] = {}
        hops_seen, pause = -1, self.min_pause
        while not self._stop.wait(pause):
            try:
                session = db.load_session(self.engine, self.session_id)
                if session is None or session.hops > 20000 or (session.hops == hops_seen and not pending):
                    continue
                hops_seen = session.hops
                started = time.monotonic()
                now = {finding_key(f): f for f in session_findings(self.engine, self.session_id)}
                pause = max(self.min_pause, 5 * (time.monotonic() - started))  # at most ~1/5 of the time
                new = [f for k, f in now.items() if k in pending and k not in self.stable]
                for k, f in now.items():
                    if k in pending or k in self.stable:
                        self.stable[k] = f
                pending = {k: f for k, f in now.items() if k not in self.stable}
                if self.stable:  # evidence of a known finding can grow too: marks follow it
                    self.on_stable(new, list(self.stable.values()))
            except Exception as e:  # noqa: BLE001 - the capture matters more than the live hint
                log.debug("authtrace: live checks failed: %r", e)
