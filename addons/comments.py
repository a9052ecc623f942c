"""The comment an auth flow gets inside mitmproxy (console and mitmweb): its role and decoded
essentials, one line per hop it became. Every value is already redacted: fingerprints, never secrets."""
from __future__ import annotations

from typing import Any

from authtrace.store import clock, saml
from authtrace.store.records import Hop

PREFIXES = ("authtrace: ", "FINDING ")  # our lines; anything else in a comment is the user's own


def flow_comment(hops: list[Hop]) -> str:
    """One line per hop: role, method, status, code and state, client_id, tokens (fingerprint, aud,
    scp, exp in UTC, signature), the error."""
    lines = []
    for h in hops:
        bits = [f"authtrace: {h.role}", h.method, str(h.status) if h.status else "---"]
        if h.code_fp:
            bits.append(h.code_fp)
        if h.state:
            bits.append(f"state={h.state[:16]}{'…' if len(h.state) > 16 else ''}")
        if h.client_id:
            bits.append(f"client_id={h.client_id}")
        for t in h.tokens:
            tok = [t.fingerprint]
            if t.aud:
                tok.append("aud=" + ",".join(t.aud))
            scope = (t.claims or {}).get("scp") or (t.claims or {}).get("scope")
            if isinstance(scope, (str, list)):
                tok.append("scp=" + (scope if isinstance(scope, str) else " ".join(map(str, scope))))
            if t.exp is not None:
                tok.append("exp=" + clock.stamp(t.exp))
            if t.format == "jwt":
                tok.append(f"signature {t.signature}")
            bits.append("[" + " ".join(tok) + "]")
        for m in (h.params.saml, h.answer.saml):
            if m is not None:
                bits.append(f"[{saml.brief(m)}]")
        if h.error is not None:
            d = h.error.error_description or h.error.message
            bits.append(f"! {h.error.error or 'error'}" + (f": {d[:120]}" if d else ""))
        lines.append(" ".join(bits))
    return "\n".join(lines)


def set_comment(flow: Any, text: str) -> None:
    """Our comment, replacing an earlier one of ours and keeping the user's own."""
    mine = [ln for ln in (flow.comment or "").splitlines() if not ln.startswith(PREFIXES)]
    flow.comment = "\n".join(mine + [text]) if mine else text


def add_line(flow: Any, line: str) -> bool:
    """Append one line of ours (a finding) unless it is there; True when the comment changed."""
    if line in (flow.comment or ""):
        return False
    flow.comment = f"{flow.comment}\n{line}" if flow.comment else line
    return True
