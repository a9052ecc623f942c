"""A session's hops with the indexes the checks share: which sign-in attempt (authorize request) a
hop belongs to, the clock skew per host, when each issued token expires, the hops of each role.
Built once per analysis, read by every check.

Which authorize request produced which code is decided from the browser's own path before `state`:
each `Location` is linked to the request it caused, and a navigation to the page named by its
full `Referer`. Following those links back from the hop that issued a code reaches the authorize
request that started it, so two sign-ins interleaved in two tabs, or a client that sends no state
(PKCE only), stay apart. An attempt is one authorize request the client started and every request
the provider made the browser repeat on its way (its login and consent forms often post back to the
authorize URL itself).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from authtrace.store.records import Hop, Role, Token

CHAIN_ROLES = (Role.AUTHORIZE, Role.LOGIN, Role.CALLBACK, Role.ERROR)  # browser navigations of a sign-in


@dataclass(slots=True, frozen=True)
class Lifetime:
    """When an issued token expires, in server time, and what says so."""

    token: Token
    issued_by: Hop  # the token answer (or the hop that carried it)
    expires: float  # epoch seconds
    source: str  # "expires_in" (the token answer) or "exp" (the token's claim)


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
        self.code_issuer: dict[str, Hop] = {}
        for h in self.hops:
            if h.answer.issued_code:
                self.code_issuer.setdefault(h.answer.issued_code, h)
        self.cause: dict[int, Hop] = _chain(self.hops)
        self.attempt: dict[int, Hop] = {}  # id(authorize hop) -> the authorize hop that began its attempt
        self.attempts: dict[int, list[Hop]] = defaultdict(list)  # id(root) -> the attempt's authorize hops
        self._group_attempts()
        self.lifetimes: dict[str, Lifetime] = _lifetimes(self.hops, self.skew)

    # ---- which sign-in a hop belongs to -----------------------------------------------------------

    def caused_by(self, h: Hop) -> Hop | None:
        """The hop whose answer (Location, or the page named by a full Referer) led the browser here."""
        return self.cause.get(id(h))

    def attempt_of(self, h: Hop) -> Hop | None:
        """The authorize request that began the sign-in attempt `h` is part of, by the browser's path
        (for an authorize hop: itself or the attempt it repeats). None when the path is not captured."""
        if h.role == Role.AUTHORIZE:
            return self.attempt.get(id(h), h)
        g: Hop | None = h
        seen = 0
        while g is not None and seen < 200:
            if g.role == Role.AUTHORIZE:
                return self.attempt.get(id(g), g)
            if g is not h and g.role == Role.CALLBACK:
                return None  # the chain left the sign-in (the app started another one)
            g = self.cause.get(id(g))
            seen += 1
        return None

    def producer_of(self, h: Hop) -> Hop | None:
        """The authorize request that really produced the code (or answer) a callback or token request
        carries, by the browser's path: the hop that issued the code, back to its authorize request."""
        issuer = self.code_issuer.get(h.code_fp) if h.code_fp else None
        if issuer is not None:
            found = self.attempt_of(issuer)
            if found is not None:
                return found
        if h.role == Role.CALLBACK:
            cause = self.cause.get(id(h))
            if cause is not None:
                return self.attempt_of(cause)
        return None

    def authorize_for(self, h: Hop) -> list[Hop]:
        """The authorize hops this hop belongs to: the attempt that produced its code (by the browser's
        path), else by state, then by code via its callback, then by client. The attempt's first
        request comes first."""
        found = self._auth_for.get(id(h))
        if found is None:
            root = self.producer_of(h) if h.role in (Role.CALLBACK, Role.TOKEN) else None
            if root is not None:
                found = self.attempts.get(id(root), [root])
            else:
                state = h.state or (self.state_by_code.get(h.code_fp) if h.code_fp else None)
                found = self.auth_by_state.get(state, []) if state else []
                if not found:
                    cid = h.client_id or h.params.get("client_id")
                    found = self.auth_by_client.get(cid, []) if cid else self.authorize
            self._auth_for[id(h)] = found
        return found

    def attempt_roots(self) -> list[Hop]:
        """The first authorize request of each sign-in attempt, in time order."""
        return [a for a in self.authorize if self.attempt.get(id(a)) is a]

    def _group_attempts(self) -> None:
        """An authorize request repeats an earlier attempt when the browser's path leads back to it
        without passing through the app (its callback), or when it carries the same client and the
        same state (else nonce, else code_challenge): the provider sent the browser back to its own
        authorize URL. Anything else is a new attempt started by the client."""
        by_key: dict[tuple[str | None, str, str], Hop] = {}
        for a in self.authorize:
            root = None
            g = self.cause.get(id(a))
            steps = 0
            while g is not None and steps < 200 and g.role != Role.CALLBACK:
                if g.role == Role.AUTHORIZE:
                    root = self.attempt.get(id(g), g)
                    break
                g = self.cause.get(id(g))
                steps += 1
            key = _attempt_key(a)
            if root is None and key is not None:
                root = by_key.get(key)
            root = root or a
            self.attempt[id(a)] = root
            self.attempts[id(root)].append(a)
            if key is not None:
                by_key.setdefault(key, root)

    def skew_at(self, h: Hop) -> float:
        return self.skew.get(h.host, 0.0)

    def issued(self, fingerprint: str) -> Lifetime | None:
        return self.lifetimes.get(fingerprint)


def _attempt_key(a: Hop) -> tuple[str | None, str, str] | None:
    for name in ("state", "nonce", "code_challenge"):
        v = a.state if name == "state" else (a.nonce if name == "nonce" else a.params.get(name))
        if v:
            return (a.client_id, name, v)
    return None


def _resolve(base: str, location: str) -> str:
    """A Location against the URL it answered (both redacted the same way)."""
    if "://" in location.split("?", 1)[0]:
        return location
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    if location.startswith("//"):
        return f"{scheme}:{location}"
    if location.startswith("/"):
        return f"{scheme}://{host}{location}"
    path = rest.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{path.rsplit('/', 1)[0]}/{location}"


def _chain(hops: list[Hop]) -> dict[int, Hop]:
    """id(hop) -> the earlier hop that led the browser to it: the latest one whose Location is this
    hop's URL, else the latest navigation whose URL is this hop's full Referer (a page with a path or
    query, not an origin-only Referer, which names no page)."""
    pending: dict[str, list[Hop]] = defaultdict(list)
    seen_url: dict[str, Hop] = {}
    out: dict[int, Hop] = {}
    for h in hops:
        if h.role in CHAIN_ROLES:
            targets = pending.get(h.url)
            if targets:
                out[id(h)] = targets.pop()
            elif h.initiator is not None and h.initiator.referer:
                ref = h.initiator.referer
                tail = ref.split("://", 1)[-1]
                if "/" in tail and tail.split("/", 1)[1] and ref in seen_url:
                    out[id(h)] = seen_url[ref]
            seen_url[h.url] = h
        if h.answer.location:
            pending[_resolve(h.url, h.answer.location)].append(h)
    return out


def _lifetimes(hops: list[Hop], skew: dict[str, float]) -> dict[str, Lifetime]:
    """When each token the session was issued expires, in the issuer's clock: the token answer's
    `expires_in` from the answer's time (what a client is told; most access tokens are opaque to it),
    else the JWT's own `exp`."""
    out: dict[str, Lifetime] = {}
    for h in hops:
        if not h.ok:
            continue
        answered = h.started + (h.duration_ms or 0) / 1000 + skew.get(h.host, 0.0)
        expires_in = h.answer.expires_in if h.role == Role.TOKEN else None
        for t in h.tokens:
            if t.presented or t.fingerprint in out:
                continue
            if t.kind == "access_token" and expires_in is not None and 0 < expires_in < 10 * 365 * 86400:
                out[t.fingerprint] = Lifetime(t, h, answered + expires_in, "expires_in")
            elif t.exp is not None:
                out[t.fingerprint] = Lifetime(t, h, t.exp, "exp")
    return out


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
