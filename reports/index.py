"""A session's hops with the indexes the checks share: which authorize request a hop belongs to,
the clock skew per host, the hops of each role. Built once per analysis, read by every check."""
from __future__ import annotations

import statistics
from collections import defaultdict
from email.utils import parsedate_to_datetime

from authtrace.store.records import Hop, Role


class SessionIndex:
    def __init__(self, hops: list[Hop], expect_audience: dict[str, str] | None = None):
        self.hops = sorted(hops, key=lambda h: (h.started, h.number))
        self.expect = expect_audience or {}
        self.authorize = [h for h in self.hops if h.role == Role.AUTHORIZE]
        self.callbacks = [h for h in self.hops if h.role == Role.CALLBACK]
        self.redemptions = [h for h in self.hops if h.role == Role.TOKEN and h.code_fp]
        self.skew = clock_skew(self.hops)
        self._auth_for: dict[int, list[Hop]] = {}
        self.auth_by_state: dict[str, list[Hop]] = defaultdict(list)
        self.auth_by_client: dict[str | None, list[Hop]] = defaultdict(list)
        for a in self.authorize:
            if a.state:
                self.auth_by_state[a.state].append(a)
            self.auth_by_client[a.client_id].append(a)
        self.state_by_code: dict[str, str] = {}
        for c in self.callbacks:
            if c.code_fp and c.state:
                self.state_by_code.setdefault(c.code_fp, c.state)

    def authorize_for(self, h: Hop) -> list[Hop]:
        """The authorize hops this hop belongs to: by state, then by code via its callback, then by client."""
        found = self._auth_for.get(id(h))
        if found is None:
            state = h.state or (self.state_by_code.get(h.code_fp) if h.code_fp else None)
            found = self.auth_by_state.get(state, []) if state else []
            if not found:
                cid = h.client_id or h.params.get("client_id")
                found = self.auth_by_client.get(cid, []) if cid else self.authorize
            self._auth_for[id(h)] = found
        return found

    def skew_at(self, h: Hop) -> float:
        return self.skew.get(h.host, 0.0)


def clock_skew(hops: list[Hop]) -> dict[str, float]:
    """Server clock minus capture clock, per host, from Date headers (1 s resolution)."""
    per: dict[str, list[float]] = defaultdict(list)
    for h in hops:
        d = h.response_headers.get("date")
        if not d:
            continue
        try:
            server = parsedate_to_datetime(d).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        per[h.host].append(server - (h.started + (h.duration_ms or 0) / 2000))
    return {host: statistics.median(v) for host, v in per.items()}
