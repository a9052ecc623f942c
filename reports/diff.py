"""`authtrace diff`: a working sign-in (GOOD) and a failing one (BAD) side by side (DESIGN §11).

`compare(good, bad)` aligns the two analysed sessions (`diff_align`), compares every paired step's
facts (`diff_facts`), counts the steps and flows only one side made, links each difference to BAD's
findings and ranks them. The link is made by protocol facts, never by words: a difference explains a
finding when it was read from one of the finding's evidence hops on BAD's side and its fact is one
that can cause that kind of finding (`EXPLAINS`, e.g. the scope asked for or the token's `aud` for
`wrong_audience`, the number of callbacks for `duplicate_redirect`), in the failing direction (BAD made
more callbacks, BAD's state does not match). A difference in how an evidence hop ended (its status,
its error, a step only BAD made) shows the finding instead. Values every two sign-ins differ in are
kept apart as "differs, as expected" and never ranked.
"""
from __future__ import annotations

from collections.abc import Iterable

from authtrace.reports.checks.base import EXPECTED_ERRORS
from authtrace.reports.diagnose import Analysis
from authtrace.reports.diff_align import HOST_KEYED, align_flows, grant_of
from authtrace.reports.diff_facts import ORDER, PRESENCE_MATTERS, Fact, SideFacts
from authtrace.reports.diff_model import Comparison, Difference, FlowPair, Group, Rank, StepPair
from authtrace.store.records import Actor, Finding, Hop, Role

__all__ = ["compare", "EXPLAINS"]

_REQUEST = frozenset({"client_id", "authority", "version", "scope", "resource", "audience", "redirect_uri",
                      "response_type", "response_mode", "delivery", "prompt", "login_hint", "domain_hint", "claims",
                      "acr_values", "pkce_method", "client_auth", "dpop", "state", "nonce", "state_bound",
                      "verifier_bound", "redirect_uri_bound", "endpoint"})
_AUDIENCE = frozenset({"scope", "resource", "audience", "granted_scope", "aud", "scp", "scope_claim", "roles",
                       "endpoint", "only:api", "only:userinfo"})
# finding kind -> the facts whose difference can cause it (the rest of a difference at its evidence
# hops, if it is about how a step ended, shows it)
EXPLAINS: dict[str, frozenset[str]] = {
    "wrong_audience": _AUDIENCE,
    "scope_not_granted": frozenset({"scope", "resource", "audience", "granted_scope", "scp", "scope_claim", "roles",
                                    "prompt", "claims"}),
    "reused_code": frozenset({"count:callback", "count:code_redemption"}),
    "duplicate_redirect": frozenset({"count:callback"}),
    "token_revoked": frozenset({"count:code_redemption", "count:callback"}),
    "state_mismatch": frozenset({"state_bound", "state", "cookies", "count:callback", "count:authorize"}),
    "nonce_mismatch": frozenset({"nonce_bound", "nonce", "count:authorize"}),
    "pkce_mismatch": frozenset({"pkce_method", "verifier_bound", "client_auth"}),
    "redirect_uri_mismatch": frozenset({"redirect_uri", "redirect_uri_bound"}),
    "expired_token": frozenset({"lifetime", "expires_in", "delay"}),
    "issuer_mismatch": frozenset({"authority", "version", "issuer", "tid", "iss"}),
    "redirect_loop": frozenset({"count:authorize", "only_flow", "cookies", "count:callback"}),
    "idp_error": _REQUEST | {"count:callback", "count:code_redemption", "cookies", "delay"},
    "failed_hop": _REQUEST | {"count:callback", "count:code_redemption", "cookies", "delay"},
}
_ANSWER = frozenset({"granted_scope", "expires_in", "token_type", "issued"})  # a failed answer has none of these
_ORDER = {f: i for i, f in enumerate(ORDER)}


def compare(good: Analysis, bad: Analysis, good_source: str = "GOOD", bad_source: str = "BAD") -> Comparison:
    flows = align_flows(good, bad)
    out = _Collector(_blind(good), _blind(bad))
    gside, bside = SideFacts(good.hops), SideFacts(bad.hops)
    for fp in flows:
        if not fp.good_hops or not fp.bad_hops:
            out.only_flow(fp)
            continue
        prev_g = {id(h): fp.good_hops[i - 1] for i, h in enumerate(fp.good_hops) if i}
        prev_b = {id(h): fp.bad_hops[i - 1] for i, h in enumerate(fp.bad_hops) if i}
        for sp in fp.steps:
            if sp.good is not None and sp.bad is not None:
                out.step(sp, gside.of(sp.good, prev_g.get(id(sp.good))), bside.of(sp.bad, prev_b.get(id(sp.bad))))
        out.unpaired(fp.steps)
    findings = _finding_order(good, bad)
    differences = out.differences
    for d in differences:
        _link(d, findings)
    position = {id(h): i for i, sp in enumerate(s for fp in flows for s in fp.steps) for h in (sp.good, sp.bad)
                if h is not None}
    ranked = sorted(differences, key=lambda d: _sort_key(d, findings, position))
    expected = sorted(out.expected, key=lambda d: d.subject)
    return Comparison(good=good, bad=bad, good_source=good_source, bad_source=bad_source, flows=flows,
                      differences=ranked, expected=expected)


class _Collector:
    """Differences as they are found, merged: one fact that differs alike at several steps (the user
    agent, a token's aud where it was issued and where it was used) is one difference."""

    def __init__(self, good_blind: bool = False, bad_blind: bool = False) -> None:
        self.blind = (good_blind, bad_blind)  # a side whose capture holds no back-channel traffic
        self.merged: dict[tuple[str, str, str | None, str | None], Difference] = {}
        self.noisy: dict[str, Difference] = {}
        self.hops: dict[int, tuple[dict[int, Hop], dict[int, Hop]]] = {}  # id(difference) -> its hops, by id

    @property
    def differences(self) -> list[Difference]:
        return [self._with_hops(d) for d in self.merged.values()]

    @property
    def expected(self) -> list[Difference]:
        return [self._with_hops(d) for d in self.noisy.values()]

    def _with_hops(self, d: Difference) -> Difference:
        gh, bh = self.hops[id(d)]
        d.good_hops = tuple(sorted(gh.values(), key=lambda h: h.number))
        d.bad_hops = tuple(sorted(bh.values(), key=lambda h: h.number))
        return d

    def _keep(self, d: Difference, good_hops: Iterable[Hop], bad_hops: Iterable[Hop]) -> None:
        gh, bh = self.hops.setdefault(id(d), ({}, {}))
        gh.update((id(h), h) for h in good_hops)
        bh.update((id(h), h) for h in bad_hops)

    def add(self, *, subject: str, field: str, group: Group, good: str | None, bad: str | None, note: str = "",
            good_hops: Iterable[Hop] = (), bad_hops: Iterable[Hop] = ()) -> None:
        key = (subject, field, good, bad)
        d = self.merged.get(key)
        if d is None:
            d = self.merged[key] = Difference(subject=subject, field=field, group=group, good=good, bad=bad,
                                              note=note)
        self._keep(d, good_hops, bad_hops)

    def noise(self, subject: str, field: str, good: str | None, bad: str | None, gh: Iterable[Hop],
              bh: Iterable[Hop]) -> None:
        d = self.noisy.get(subject)
        if d is None:
            d = self.noisy[subject] = Difference(subject=subject, field=field, group=Group.EXPECTED, good=good,
                                                 bad=bad)
        self._keep(d, gh, bh)

    def step(self, sp: StepPair, gfacts: list[Fact], bfacts: list[Fact]) -> None:
        g_by = {(f.slot, f.field): f for f in gfacts}
        b_by = {(f.slot, f.field): f for f in bfacts}
        assert sp.good is not None and sp.bad is not None
        ended_alike = sp.good.ok == sp.bad.ok
        for key in [*g_by, *(k for k in b_by if k not in g_by)]:
            x, y = g_by.get(key), b_by.get(key)
            f = x or y
            assert f is not None
            subject = f"{sp.step} · {f.name}" if f.per_step else f.name
            if x is not None and y is not None:
                if x.same_as(y):
                    continue
                if f.group == Group.EXPECTED:
                    self.noise(f.name, f.field, x.value, y.value, (sp.good,), (sp.bad,))
                    continue
                self.add(subject=subject, field=f.field, group=f.group, good=x.value, bad=y.value,
                         note=_note(x, y), good_hops=[sp.good], bad_hops=[sp.bad])
                continue
            if f.both or (not ended_alike and (f.field in _ANSWER or f.slot.startswith("response."))):
                continue  # unknown on one side; or the answer of a failed step, which its status already says
            if f.group == Group.EXPECTED:
                if f.field in PRESENCE_MATTERS:
                    self.add(subject=f"{sp.step} · {f.name}", field=f.field, group=Group.CONFIGURATION,
                             good="sent" if x else None, bad="sent" if y else None,
                             good_hops=[sp.good], bad_hops=[sp.bad])
                continue
            self.add(subject=subject, field=f.field, group=f.group, good=x.value if x else None,
                     bad=y.value if y else None, note=f.note, good_hops=[sp.good], bad_hops=[sp.bad])

    def unpaired(self, steps: list[StepPair]) -> None:
        """Steps of a flow pair that only one side made: API calls and login pages as "only in", the
        protocol steps as how many times each side made them."""
        by_step: dict[str, list[StepPair]] = {}
        for sp in steps:
            by_step.setdefault(sp.step, []).append(sp)
        for label, sps in by_step.items():
            lone = [sp for sp in sps if sp.good is None or sp.bad is None]
            polls = [sp for sp in lone if _polling(sp)]
            if polls:  # how often a device-flow client asked before the user approved says nothing
                self.noise("device-flow polls (authorization_pending, slow_down)", "polls", None, None,
                           [sp.good for sp in polls if sp.good is not None],
                           [sp.bad for sp in polls if sp.bad is not None])
                lone = [sp for sp in lone if not _polling(sp)]
            unseen = [sp for sp in lone if self._unseen(sp)]
            if unseen:  # the other capture could not show it: no known difference
                self.noise("back-channel steps the other capture cannot show", "unseen", None, None,
                           [sp.good for sp in unseen if sp.good is not None],
                           [sp.bad for sp in unseen if sp.bad is not None])
                lone = [sp for sp in lone if not self._unseen(sp)]
            if not lone:
                continue
            gh = [sp.good for sp in sps if sp.good is not None and not _polling(sp)]
            bh = [sp.bad for sp in sps if sp.bad is not None and not _polling(sp)]
            role = (gh or bh)[0].role
            if role in HOST_KEYED:
                for side_hops, is_good in (([sp.good for sp in lone if sp.good is not None], True),
                                           ([sp.bad for sp in lone if sp.bad is not None], False)):
                    if side_hops:
                        made = _made(side_hops)
                        self.add(subject=label, field=f"only:{role}", group=Group.OUTCOME,
                                 good=made if is_good else None, bad=None if is_good else made,
                                 good_hops=side_hops if is_good else (), bad_hops=() if is_good else side_hops)
            else:
                redemption = role == Role.TOKEN and grant_of((gh or bh)[0]) == "authorization_code"
                self.add(subject=f"{label} requests", field="count:code_redemption" if redemption else f"count:{role}",
                         group=Group.OUTCOME, good=str(len(gh)) if gh else None, bad=str(len(bh)) if bh else None,
                         note=_count_note(gh, bh), good_hops=gh, bad_hops=bh)

    def _unseen(self, sp: StepPair) -> bool:
        """A step of the app's back channel that only one side has, where the other side's capture holds
        no back-channel traffic at all (a browser HAR, an app not behind the proxy)."""
        h, other_blind = (sp.good, self.blind[1]) if sp.good is not None else (sp.bad, self.blind[0])
        return other_blind and h is not None and h.actor != Actor.BROWSER

    def only_flow(self, fp: FlowPair) -> None:
        hops = fp.good_hops or fp.bad_hops
        steps = [h for h in hops if h.role in (Role.AUTHORIZE, Role.CALLBACK, Role.TOKEN, Role.DEVICE, Role.API,
                                                Role.USERINFO, Role.LOGOUT)]
        shown = " → ".join(dict.fromkeys(str(h.role) for h in steps)) or "other hops"
        value = f"{shown} ({len(hops)} hop{'s' if len(hops) != 1 else ''})"
        good = bool(fp.good_hops)
        self.add(subject="sign-in flow", field="only_flow", group=Group.OUTCOME,
                 good=value if good else None, bad=None if good else value,
                 good_hops=fp.good_hops, bad_hops=fp.bad_hops)


def _polling(sp: StepPair) -> bool:
    """A device-flow poll answered "not yet": a step every device sign-in repeats a different number of times."""
    h = sp.good if sp.good is not None else sp.bad
    return h is not None and h.error is not None and h.error.error in EXPECTED_ERRORS


def _note(x: Fact, y: Fact) -> str:
    if x.note and y.note and x.note != y.note:
        return f"GOOD: {x.note}; BAD: {y.note}"
    return x.note or y.note


def _outcome(h: Hop) -> str:
    status = "no response" if h.status is None else str(h.status)
    err = h.error.error if h.error and h.error.error else ""
    return f"#{h.number} {status}" + (f" {err}" if err else "")


def _made(hops: list[Hop]) -> str:
    auds = sorted({a for h in hops for t in h.presented_tokens() for a in t.aud})
    return (", ".join(_outcome(h) for h in hops[:6]) + (f" and {len(hops) - 6} more" if len(hops) > 6 else "")
            + (f"; token aud {', '.join(auds)}" if auds else ""))


def _blind(a: Analysis) -> bool:
    return bool(a.hops) and all(h.actor == Actor.BROWSER for h in a.hops)


def _count_note(gh: list[Hop], bh: list[Hop]) -> str:
    parts = [f"{side}: " + ", ".join(_outcome(h) for h in hs[:6]) for side, hs in (("GOOD", gh), ("BAD", bh)) if hs]
    return "; ".join(parts)


def _finding_order(good: Analysis, bad: Analysis) -> list[Finding]:
    """BAD's findings, those GOOD does not have first: a finding both sides share cannot be why only
    BAD fails."""
    shared = {f.kind for f in good.findings}
    return [f for _, f in sorted(enumerate(bad.findings), key=lambda p: (p[1].kind in shared, p[0]))]


def _explains(d: Difference, f: Finding) -> bool:
    if d.field not in EXPLAINS.get(f.kind, ()):
        return False
    if d.field.startswith("count:"):  # made more often than GOOD made it: a repeat, not a step of its own
        return int(d.bad or 0) > int(d.good or 0) >= 1
    if d.field.endswith("_bound"):
        return d.bad != "yes"
    return True


def _link(d: Difference, findings: list[Finding]) -> None:
    if not d.bad_hops:
        return
    touched = {id(h) for h in d.bad_hops}
    explains, shows = [], []
    for f in findings:
        if not any(id(h) in touched for h in f.evidence):
            continue
        if _explains(d, f):
            explains.append(f)
        elif d.group == Group.OUTCOME:
            shows.append(f)
    d.explains, d.shows = tuple(explains), tuple(shows)


def _sort_key(d: Difference, findings: list[Finding], position: dict[int, int]) -> tuple[int, int, int, int, int]:
    """Rank; then the first finding it is linked to, causes before symptoms; then, for causes and
    configuration, the fact's place in `ORDER`; then where it happened in the aligned steps."""
    linked = {id(f) for f in d.linked}
    first = min((i for i, f in enumerate(findings) if id(f) in linked), default=len(findings))
    where = min((position.get(id(h), 0) for h in (*d.bad_hops, *d.good_hops)), default=0)
    by_fact = _ORDER.get(d.field, len(_ORDER)) if d.rank <= Rank.CLIENT else 0
    return int(d.rank), first, 0 if d.explains else 1, by_fact, where
