"""Which flow and which step of GOOD goes with which of BAD (`authtrace diff`, DESIGN §11).

Flows are the timeline's flow groups (hops that share a state, code, nonce or token); the hops in no
group (login pages, discovery, JWKS, API calls with an opaque token) join the flow they happen in.
Flows pair by kind and client, in order. Inside a pair, steps pair by what they are: protocol steps
by role (a token request also by grant type), whatever their host, so a changed authority or tenant
shows as a difference, not as two unrelated steps; login pages and API calls by method, host and
path, then API calls by method and path alone (a regional host against the global one). Pairing keeps
the order on both sides and prefers steps that ended alike, so an extra retry, MFA or consent page,
silent renewal or API call stays unpaired ("only in GOOD/BAD") instead of shifting every pair after
it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TypeVar

from authtrace.reports.diagnose import Analysis
from authtrace.reports.diff_model import FlowPair, StepPair
from authtrace.store.records import Hop, Role

T = TypeVar("T")
MAX_CELLS = 250_000  # above this, pairing in order replaces the optimal alignment (huge captures)
HOST_KEYED = (Role.API, Role.LOGIN)  # steps told apart by where they go; the others by what they are
STARTS = (Role.AUTHORIZE, Role.DEVICE, Role.CALLBACK, Role.TOKEN)  # the protocol steps a flow can begin with
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_TOKENISH = re.compile(r"^[A-Za-z0-9_~.+=-]{16,}$")


@lru_cache(maxsize=4096)
def norm_path(path: str) -> str:
    """The path with its per-request parts (ids, GUIDs, numbers, random handles) replaced by `*`, so
    `/interaction/_DB1OT…9CG` of one sign-in pairs with `/interaction/fhivO…l7i` of another."""
    segs = []
    for seg in (path or "/").split("?", 1)[0].split("/"):
        if seg.isdigit() or _GUID.match(seg) or (_TOKENISH.match(seg) and any(c.isdigit() for c in seg)):
            segs.append("*")
        else:
            segs.append(seg)
    return "/".join(segs) or "/"


def grant_of(h: Hop) -> str:
    return h.params.get("grant_type") or "no grant_type"


def step_label(h: Hop) -> str:
    """What a step is, as a person reads it: `authorize`, `token (authorization_code)`,
    `api GET api.test/data`."""
    if h.role == Role.TOKEN:
        return f"token ({grant_of(h)})"
    if h.role in HOST_KEYED:
        return f"{h.role} {h.method} {h.host}{norm_path(h.path)}"
    return str(h.role)


def _loose_label(h: Hop) -> str:
    """The second chance for an API call: the same method and path at another host."""
    return f"{h.role} {h.method} {norm_path(h.path)}" if h.role == Role.API else ""


def align(a: Sequence[T], b: Sequence[T], score: Callable[[T, T], float]) -> list[tuple[T | None, T | None]]:
    """Order-preserving pairing of two sequences that maximises the summed score; a pair needs a
    score above 0. Unpaired items come out alone, in order."""
    n, m = len(a), len(b)
    if n * m > MAX_CELLS:
        out: list[tuple[T | None, T | None]] = []
        for i in range(max(n, m)):
            x, y = (a[i] if i < n else None), (b[i] if i < m else None)
            if x is not None and y is not None and score(x, y) <= 0:
                out += [(x, None), (None, y)]
            else:
                out.append((x, y))
        return out
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        row, prev = best[i], best[i - 1]
        for j in range(1, m + 1):
            s = score(a[i - 1], b[j - 1])
            row[j] = max(prev[j], row[j - 1], prev[j - 1] + s if s > 0 else 0.0)
    pairs: list[tuple[T | None, T | None]] = []
    i, j = n, m
    while i > 0 and j > 0:
        # walking back, leave the later item alone on a tie: the earlier ones pair
        if best[i][j] == best[i - 1][j]:
            pairs.append((a[i - 1], None))
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            pairs.append((None, b[j - 1]))
            j -= 1
        else:
            pairs.append((a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
    pairs += [(a[k], None) for k in range(i - 1, -1, -1)] + [(None, b[k]) for k in range(j - 1, -1, -1)]
    pairs.reverse()
    return pairs


# ---- flows ----------------------------------------------------------------------------------------

def flows_of(a: Analysis) -> list[tuple[int | None, list[Hop]]]:
    """The side's sign-in flows in order of their first hop, each with its hops in time order.

    A flow that starts with a callback or a code redemption is the rest of the sign-in before it whose
    link broke (a callback whose state was altered shares nothing with its authorize request): it
    joins the latest earlier flow that has an authorize request. A hop in no flow joins the flow it
    happens in (the latest one started before it that has not ended), else the next flow (discovery
    before the authorize request), else the last one."""
    members: dict[int, list[Hop]] = {}
    for h in a.hops:
        f = a.flows.get(h.number)
        if f is not None:
            members.setdefault(f, []).append(h)
    if not members:
        return [(None, list(a.hops))] if a.hops else []
    started: list[int] = []  # flows with an authorize request, in order
    for f, hs in sorted(members.items(), key=lambda kv: kv[1][0].started):
        first = next((h for h in hs if h.role in STARTS), None)
        if first is not None and first.role == Role.AUTHORIZE:
            started.append(f)
        elif (first is None or _continues(first)) and started:
            members[started[-1]] += members.pop(f)
    for hs in members.values():
        hs.sort(key=lambda h: (h.started, h.number))
    spans = sorted(((hs[0].started, hs[-1].started, f) for f, hs in members.items()))
    for h in a.hops:
        if h.number in a.flows:
            continue
        inside = [f for start, end, f in spans if start <= h.started <= end]
        later = [f for start, _, f in spans if start > h.started]
        home = inside[-1] if inside else later[0] if later else spans[-1][2]
        members[home].append(h)
    return [(f, sorted(members[f], key=lambda h: (h.started, h.number))) for _, _, f in spans]


def _continues(h: Hop) -> bool:
    """A step that only continues a sign-in begun elsewhere: a callback, a code redemption."""
    return h.role == Role.CALLBACK or (h.role == Role.TOKEN and grant_of(h) == "authorization_code")


def _flow_kind(hops: list[Hop]) -> tuple[str, str | None, str | None]:
    """(first protocol step, client id, redirect_uri) of a flow."""
    kind, client, redirect = "other", None, None
    for h in hops:
        if kind == "other" and h.role in STARTS:
            kind = step_label(h)
        client = client or h.client_id
        redirect = redirect or h.params.get("redirect_uri")
    return kind, client, redirect


def _flow_score(g: tuple[str, str | None, str | None], b: tuple[str, str | None, str | None]) -> float:
    if g[0] != b[0]:
        return 0.0
    return 2.0 + (2.0 if g[1] == b[1] else 0.0) + (1.0 if g[2] == b[2] else 0.0)


def align_flows(good: Analysis, bad: Analysis) -> list[FlowPair]:
    gf, bf = flows_of(good), flows_of(bad)
    gk, bk = [_flow_kind(hs) for _, hs in gf], [_flow_kind(hs) for _, hs in bf]
    pairs = align(list(range(len(gf))), list(range(len(bf))), lambda i, j: _flow_score(gk[i], bk[j]))
    out = []
    for i, j in pairs:
        g = gf[i] if i is not None else (None, [])
        b = bf[j] if j is not None else (None, [])
        fp = FlowPair(good=g[0], bad=b[0], good_hops=g[1], bad_hops=b[1])
        fp.steps = align_steps(g[1], b[1]) if g[1] and b[1] else [
            StepPair(step=step_label(h), good=h if i is not None else None, bad=h if j is not None else None)
            for h in g[1] + b[1]]
        out.append(fp)
    return out


# ---- steps ------------------------------------------------------------------------------------------

def _step_score(g: Hop, b: Hop) -> float:
    """Same kind of step: 1; more when it went to the same place and ended alike."""
    return (1.0 + (0.5 if g.host == b.host else 0.0) + (1.0 if g.ok == b.ok else 0.0)
            + (0.5 if g.status == b.status else 0.0))


def _pair_by(label: Callable[[Hop], str], good: list[Hop], bad: list[Hop]) -> list[tuple[Hop | None, Hop | None]]:
    groups: dict[str, tuple[list[Hop], list[Hop]]] = {}
    for side, hops in ((0, good), (1, bad)):
        for h in hops:
            key = label(h)
            if key:
                groups.setdefault(key, ([], []))[side].append(h)
    out: list[tuple[Hop | None, Hop | None]] = []
    for gs, bs in groups.values():
        pairs: list[tuple[Hop | None, Hop | None]] = align(gs, bs, _step_score)
        out += pairs
    return out


def align_steps(good: list[Hop], bad: list[Hop]) -> list[StepPair]:
    """The steps of one flow pair, in the order they happened on both sides."""
    pairs = [p for p in _pair_by(step_label, good, bad) if p[0] is not None and p[1] is not None]
    paired = {id(h) for p in pairs for h in p}
    left_g = [h for h in good if id(h) not in paired]
    left_b = [h for h in bad if id(h) not in paired]
    pairs += [p for p in _pair_by(_loose_label, left_g, left_b) if p[0] is not None and p[1] is not None]
    paired = {id(h) for p in pairs for h in p}
    pairs += [(h, None) for h in good if id(h) not in paired] + [(None, h) for h in bad if id(h) not in paired]
    return [StepPair(step=step_label(_either(g, b)), good=g, bad=b) for g, b in _in_order(pairs, good, bad)]


def _either(g: Hop | None, b: Hop | None) -> Hop:
    h = g if g is not None else b
    assert h is not None  # a pair always has one side
    return h


def _in_order(pairs: list[tuple[Hop | None, Hop | None]], good: list[Hop], bad: list[Hop]
              ) -> list[tuple[Hop | None, Hop | None]]:
    """Pairs in the order both sides made them: paired steps at their positions, a step of one side
    right after the last paired step before it on that side."""
    pos_g = {id(h): i for i, h in enumerate(good)}
    pos_b = {id(h): i for i, h in enumerate(bad)}
    partner_g = {id(g): pos_b[id(b)] for g, b in pairs if g is not None and b is not None}
    partner_b = {id(b): pos_g[id(g)] for g, b in pairs if g is not None and b is not None}
    where: dict[int, tuple[float, float]] = {}
    last = -0.5
    for h in good:
        last = partner_g.get(id(h), last)
        where[id(h)] = (pos_g[id(h)], last + 0.5 if id(h) not in partner_g else last)
    last = -0.5
    for h in bad:
        last = partner_b.get(id(h), last)
        if id(h) not in partner_b:
            where[id(h)] = (last + 0.5, pos_b[id(h)])

    def key(p: tuple[Hop | None, Hop | None]) -> tuple[float, float]:
        return where[id(p[0])] if p[0] is not None else where[id(p[1])]
    return sorted(pairs, key=key)
