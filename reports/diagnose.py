"""One session, analysed: its hops (numbered), findings, the checks that failed, notes, verdict and
flow groups. Every renderer (terminal, JSON, HTML) reads an `Analysis`; nothing re-derives it."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from authtrace.reports.checks import CheckFailure, run_checks
from authtrace.reports.flows import flow_groups
from authtrace.reports.header import SignIn, signin_of
from authtrace.reports.verdict import notes, verdict
from authtrace.store import db
from authtrace.store.records import CaptureSession, Finding, Hop


@dataclass(slots=True)
class Analysis:
    session: CaptureSession
    hops: list[Hop]  # time order; hop.number is the position
    findings: list[Finding]
    failures: list[CheckFailure]  # checks that raised: authtrace bugs, reported as such
    notes: list[str]
    verdict: tuple[str, str]  # (class, sentence)
    flows: dict[int, int]  # hop number -> flow number
    signin: SignIn  # what sign-in this is: app, provider, clients, flow types, source, time range


def analyse(engine: Engine, session: CaptureSession, expect_audience: dict[str, str] | None = None) -> Analysis:
    """Load, check and keep the findings (so `sessions` can count them without running the checks)."""
    assert session.id is not None
    hops = db.load_hops(engine, session.id)
    findings, failures = run_checks(hops, expect_audience)
    db.replace_findings(engine, session.id, findings)
    return assemble(session, hops, findings, failures)


def assemble(session: CaptureSession, hops: list[Hop], findings: list[Finding],
             failures: list[CheckFailure] | None = None) -> Analysis:
    """An Analysis of these hops and findings: notes, verdict, flow groups and header derived once."""
    return Analysis(session, hops, findings, failures or [], notes(hops),
                    verdict(findings, len(hops), session.flows_seen), flow_groups(hops), signin_of(session, hops))
