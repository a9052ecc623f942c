"""The records of `authtrace diff` (DESIGN §11): a working sign-in (GOOD) and a failing one (BAD),
aligned flow by flow and step by step, and what differs between them, ranked.

Defined once here; `diff.compare` builds them and the terminal, JSON and HTML renderers print
them. A difference points at hops (numbered in time order within their own session) and at BAD's
findings, never at raw values: every value is already secret-free (fingerprints, decoded claims).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from authtrace.reports.diagnose import Analysis
from authtrace.store.records import Finding, Hop


class Group(enum.StrEnum):
    """What a compared fact is about; decides its rank when it explains none of BAD's findings."""

    OUTCOME = "outcome"  # how a step ended (status, error), steps or flows only one side made
    CONFIGURATION = "configuration"  # what the client asked for, where, and what it was granted
    CLIENT = "client"  # the browser or app: user agent, library, initiator, cookies sent
    TIMING = "timing"  # time between machine-paced steps, token lifetimes
    EXPECTED = "expected"  # differs between any two sign-ins: codes, state, nonce, ids, times


class Rank(enum.IntEnum):
    """The order a reader meets differences in: the cause of BAD's failure first."""

    EXPLAINS = 1  # a cause (or the visible failure) of one of BAD's findings
    CONFIGURATION = 2
    CLIENT = 3
    OUTCOME = 4  # a step that ended or happened differently, tied to no finding
    TIMING = 5

    @property
    def title(self) -> str:
        return _RANK_TITLES[self]


_RANK_TITLES = {Rank.EXPLAINS: "Explains BAD's findings", Rank.CONFIGURATION: "Client configuration",
                Rank.CLIENT: "Client", Rank.OUTCOME: "Outcome", Rank.TIMING: "Timing"}
_GROUP_RANK = {Group.CONFIGURATION: Rank.CONFIGURATION, Group.CLIENT: Rank.CLIENT, Group.OUTCOME: Rank.OUTCOME,
               Group.TIMING: Rank.TIMING}


@dataclass(slots=True, kw_only=True, eq=False)
class Difference:
    """One fact that differs, with the hops it was read from on each side. `good`/`bad` are the
    values as a person reads them; None means the side did not have it (not sent, no such step)."""

    subject: str  # "token (authorization_code) · redirect_uri", "access_token · aud"
    field: str  # the fact compared (diff_facts.ORDER): what links it to a finding and orders it
    group: Group
    good: str | None
    bad: str | None
    note: str = ""  # what the values mean: an audience's name, an error explained
    good_hops: tuple[Hop, ...] = ()
    bad_hops: tuple[Hop, ...] = ()
    explains: tuple[Finding, ...] = ()  # BAD findings this difference is a cause of
    shows: tuple[Finding, ...] = ()  # BAD findings this difference is the visible failure of

    @property
    def rank(self) -> Rank:
        if self.explains or self.shows:
            return Rank.EXPLAINS
        return _GROUP_RANK.get(self.group, Rank.OUTCOME)

    @property
    def linked(self) -> tuple[Finding, ...]:
        return self.explains + tuple(f for f in self.shows if not any(f is e for e in self.explains))


@dataclass(slots=True, kw_only=True, eq=False)
class StepPair:
    """One step of a sign-in on both sides; one side None: the step is only in the other."""

    step: str  # "callback", "token (authorization_code)", "api GET api.test/data"
    good: Hop | None
    bad: Hop | None


@dataclass(slots=True, kw_only=True, eq=False)
class FlowPair:
    """One sign-in flow on both sides (flow numbers as the timeline tags them, F1, F2, …; None: the
    hops that share no flow, or a flow only one side has)."""

    good: int | None
    bad: int | None
    good_hops: list[Hop] = field(default_factory=list)
    bad_hops: list[Hop] = field(default_factory=list)
    steps: list[StepPair] = field(default_factory=list)


@dataclass(slots=True, kw_only=True, eq=False)
class Comparison:
    """GOOD and BAD, aligned, with the differences that matter ranked and the expected ones apart."""

    good: Analysis
    bad: Analysis
    good_source: str  # what the user named: a file, or "session 3 of support.db"
    bad_source: str
    flows: list[FlowPair]
    differences: list[Difference]  # ranked: Rank, then BAD's findings in order, then the fact's order
    expected: list[Difference]  # differs, as expected: summarised, never ranked

    @property
    def relevant(self) -> bool:
        return bool(self.differences)
