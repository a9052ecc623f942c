"""Search across captures: what the store indexes when it writes hops, and the queries over it.

Two small tables are written with the hops (`models.Facet`, `models.Sighting`), so that the searches
a support team runs over a shared store are index lookups, not reads of a million hops:

* facets: what a session's hops name (role, host, client_id, tenant, error) with a hop count each.
  `sessions` filters by them and prints role counts from them;
* sightings: every fingerprint a hop carries and where, found by its digest (`find`).

A session is written by one process at a time (its importer or recorder), so its facet counts are
read, added to and written back without a race between writers.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from authtrace.store import models
from authtrace.store.bulk import insert_many
from authtrace.store.records import Hop

# A fingerprint as `addons.secrets.Fingerprinter.fp` writes it: `label#` and 10 hex digits of an
# HMAC under the store's key (tests/test_search.py holds the two in step).
FINGERPRINT_RE = re.compile(r"\b([a-z][a-z0-9_-]{0,40})#([0-9a-f]{10})\b")
DIGEST_RE = re.compile(r"[0-9a-f]{10}")
FACETS = ("role", "host", "client_id", "tenant", "error")
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})
_MAX_VALUE = 200
_MANY = 16  # hops of one session found: number them from one ordered read of its ids


# ---- what a hop adds to the index ---------------------------------------------------------------

def _fps(text: str | None) -> Iterator[tuple[str, str]]:
    if text and "#" in text:
        for m in FINGERPRINT_RE.finditer(text):
            yield m.group(0), m.group(2)


def sightings(h: Hop) -> list[tuple[str, str, str]]:
    """(digest, fingerprint, place) of every fingerprint the hop carries, the first place of each."""
    places: list[tuple[str, str | None]] = [("code", h.code_fp)]
    places += [(t.where, t.fingerprint) for t in h.tokens]
    places += [(f"{src}.{k}", v) for src, d in h.params.sources() for k, v in d.items()]
    a = h.answer
    places += [("answer.issued_code", a.issued_code), ("answer.location", a.location)]
    places += [("answer.issued_tokens", t) for t in a.issued_tokens]
    places += [(f"answer.{k}", v) for k, v in a.fields.items() if isinstance(v, str)]
    places += [(f"cookie.{k}", v) for k, v in h.cookies_sent.items()]
    places += [("state", h.state), ("url", h.url)]
    if h.error is not None:
        places.append(("error", h.error.text))
    places.append(("body", h.body_excerpt))
    out: dict[str, tuple[str, str, str]] = {}
    for place, text in places:
        for fp, digest in _fps(text):
            out.setdefault(digest, (digest, fp, place[:100]))
    return list(out.values())


def _tenant(h: Hop) -> set[str]:
    """Entra-style tenants: a token's `tid`, and the `/<tenant>/oauth2/…` segment of the path."""
    out = {t.tid.lower() for t in h.tokens if t.tid}
    first, sep, rest = h.path.lstrip("/").partition("/")
    if sep and "oauth2/" in rest + "/" and first and first.lower() not in _MULTI_TENANT:
        out.add(first.lower())
    return out


def facets(h: Hop) -> set[tuple[str, str]]:
    """(name, value) pairs the hop names, for filtering sessions."""
    out = {("role", str(h.role)), ("host", h.host.lower())}
    if h.client_id:
        out.add(("client_id", h.client_id))
    out |= {("tenant", t) for t in _tenant(h)}
    if h.error is not None:
        out |= {("error", e) for e in (h.error.error, *(f"AADSTS{c}" for c in h.error.error_codes)) if e}
    return {(n, v[:_MAX_VALUE]) for n, v in out if v}


def write_index(conn: Connection, session_id: int, hops: Iterable[Hop]) -> None:
    """Add stored hops (with their ids) to the session's facets and sightings, in the caller's transaction."""
    rows, counts = [], Counter[tuple[str, str]]()
    for h in hops:
        assert h.id is not None
        rows += [{"digest": d, "fingerprint": fp, "session_id": session_id, "hop_id": h.id, "place": p}
                 for d, fp, p in sightings(h)]
        counts.update(facets(h))
    insert_many(conn, models.Sighting, rows)
    if not counts:
        return
    f = models.Facet
    have = {(n, v): k for n, v, k in conn.execute(select(col(f.name), col(f.value), col(f.hops))
                                                  .where(col(f.session_id) == session_id))}
    new = [{"session_id": session_id, "name": n, "value": v, "hops": k} for (n, v), k in counts.items()
           if (n, v) not in have]
    if new:
        conn.execute(insert(f), new)
    for (n, v), k in counts.items():
        if (n, v) in have:
            conn.execute(update(f).where(col(f.session_id) == session_id, col(f.name) == n, col(f.value) == v)
                         .values(hops=have[(n, v)] + k))


# ---- filtering sessions -----------------------------------------------------------------------

@dataclass(slots=True)
class SessionFilter:
    """What `sessions` (and the viewer's list) narrows to; every field set must match."""

    host: str | None = None  # exact, or a pattern with * (`*.ai.azure.com`)
    client_id: str | None = None
    tenant: str | None = None
    finding: str | None = None  # a finding kind of the session's latest analysis
    since: float | None = None  # epoch seconds: the session's first hop (or creation) at or after
    until: float | None = None
    text: str | None = None  # free text: name, source, problem, facet values, finding kinds and titles

    def empty(self) -> bool:
        return all(v is None or v == "" for v in (self.host, self.client_id, self.tenant, self.finding,
                                                  self.since, self.until, self.text))


def _like(text: str) -> str:
    """A user's text as a LIKE pattern: `*` is the wildcard, `%` and `_` are themselves."""
    esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return esc.replace("*", "%")


def _facet_match(name: str, value: str) -> Any:
    f, cs = models.Facet, models.CaptureSession
    match = (col(f.value).ilike(_like(value), escape="\\") if "*" in value
             else func.lower(col(f.value)) == value.lower())
    return col(cs.id).in_(select(col(f.session_id)).where(col(f.name) == name, match))


def session_query(flt: SessionFilter) -> Select[Any]:
    """The capture sessions that match, oldest first. Each condition is `id IN (subquery)`: one
    index read per condition (a correlated EXISTS let SQLite probe the finding-kind index once per
    session: 200 ms at 1,000 sessions instead of a few)."""
    cs, fi, fa = models.CaptureSession, models.Finding, models.Facet
    q = select(cs)
    for name, value in (("host", flt.host), ("client_id", flt.client_id), ("tenant", flt.tenant)):
        if value:
            q = q.where(_facet_match(name, value))
    if flt.finding:
        q = q.where(col(cs.id).in_(select(col(fi.session_id)).where(col(fi.kind) == flt.finding)))
    when = func.coalesce(col(cs.first_seen), col(cs.created))
    if flt.since is not None:
        q = q.where(when >= flt.since)
    if flt.until is not None:
        q = q.where(when < flt.until)
    if flt.text:
        pat = "%" + _like(flt.text) + "%"
        q = q.where(or_(
            col(cs.name).ilike(pat, escape="\\"), col(cs.source).ilike(pat, escape="\\"),
            col(cs.problem).ilike(pat, escape="\\"),
            col(cs.id).in_(select(col(fa.session_id)).where(col(fa.value).ilike(pat, escape="\\"))),
            col(cs.id).in_(select(col(fi.session_id)).where(
                or_(col(fi.kind).ilike(pat, escape="\\"), col(fi.title).ilike(pat, escape="\\"))))))
    return q.order_by(col(cs.id))


def facet_counts(engine: Engine, name: str, session_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    """session id -> {value: hops} for one facet (`role`: the role counts), from the facet table."""
    f = models.Facet
    q = select(col(f.session_id), col(f.value), col(f.hops)).where(col(f.name) == name)
    if session_ids is not None:
        q = q.where(col(f.session_id).in_(session_ids))
    out: dict[int, dict[str, int]] = {}
    with engine.connect() as conn:
        for sid, value, n in conn.execute(q):
            out.setdefault(sid, {})[value] = n
    return out


# ---- find a fingerprint -----------------------------------------------------------------------

@dataclass(slots=True)
class Seen:
    """One hop where a fingerprint appears."""

    session_id: int
    session_name: str
    hop_id: int
    number: int  # the hop's number in its session (time order), as every report prints it
    started: float
    role: str
    method: str
    host: str
    path: str
    status: int | None
    fingerprint: str
    place: str


def digest_of(text: str) -> str | None:
    """The digest a user gave: `code#3f9a1c20e4`, or the 10 hex digits alone."""
    text = text.strip().lower()
    m = FINGERPRINT_RE.fullmatch(text)
    if m:
        return m.group(2)
    return text if DIGEST_RE.fullmatch(text) else None


def find(engine: Engine, digest: str, limit: int = 1000) -> list[Seen]:
    """Every hop where the fingerprint appears, in time order, across all sessions."""
    s, h, cs = models.Sighting, models.Hop, models.CaptureSession
    q = (select(col(s.session_id), col(cs.name), col(s.hop_id), col(h.started), col(h.role), col(h.method),
                col(h.host), col(h.path), col(h.status), col(s.fingerprint), col(s.place))
         .join(h, col(h.id) == col(s.hop_id)).join(cs, col(cs.id) == col(s.session_id))
         .where(col(s.digest) == digest).order_by(col(h.started), col(h.id)).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
        numbers = _numbers(conn, [(r[0], r[2], r[3]) for r in rows])
    return [Seen(session_id=r[0], session_name=r[1], hop_id=r[2], number=numbers[r[2]], started=r[3], role=r[4],
                 method=r[5], host=r[6], path=r[7], status=r[8], fingerprint=r[9], place=r[10]) for r in rows]


def _numbers(conn: Connection, hops: list[tuple[int, int, float]]) -> dict[int, int]:
    """The number `load_hops` gives each hop (its position in its session by start time, then id),
    from the (session_id, started) index instead of loading the sessions: a count per hop, or, for a
    session with many of the hops (a token used on every API call), its hop ids in order, once."""
    h = models.Hop
    per_session: dict[int, list[tuple[int, float]]] = {}
    for sid, hid, started in hops:
        per_session.setdefault(sid, []).append((hid, started))
    out: dict[int, int] = {}
    for sid, items in per_session.items():
        if len(items) > _MANY:
            order = conn.execute(select(col(h.id)).where(col(h.session_id) == sid)
                                 .order_by(col(h.started), col(h.id))).scalars()
            wanted = {hid for hid, _ in items}
            out.update((hid, n) for n, hid in enumerate(order, 1) if hid in wanted)
            continue
        for hid, started in items:
            out[hid] = conn.execute(select(func.count()).select_from(h).where(
                col(h.session_id) == sid,
                or_(col(h.started) < started, and_(col(h.started) == started, col(h.id) <= hid)))).scalar_one()
    return out
