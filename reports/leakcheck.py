"""The last gate before a report leaves the machine: does the output hold a raw secret?

The database holds no raw secret (codes, tokens and secrets are fingerprints such as
``code#3f9a1c20e4``, passwords the marker ``[password sent, not stored]``), so a clean report
never trips this check. It is the backstop for a bug anywhere upstream: a decoder that kept a
value, a check that quoted one, a template that printed the wrong field.

What counts as a leak:
* a JWT with a signature segment (``eyJ….eyJ….<signature>``): a usable token;
* ``Bearer <value>`` (also DPoP/Basic) whose value is not a fingerprint;
* a value of ``code``, ``access_token``, ``refresh_token``, ``id_token``, ``client_secret``,
  ``code_verifier`` or ``password`` in ``name=value`` or ``"name": "value"`` form (or a row
  ``<th>name</th><td>value</td>`` of the report's own tables) that is not a fingerprint and not the
  password marker.

The text is HTML: it is read with entities decoded (``&#34;`` is a quote to a reader) and, where it
holds percent-escapes, URL-decoded as well (a secret nested in an encoded ``redirect_uri``). Each leak
is named with where it sits: the hop (``data-hop="N"`` marks each hop of the timeline) or the finding
(``id="finding-N"``) it is in.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

PASSWORD_SENT = "[password sent, not stored]"
SECRET_PARAMS = ("code", "access_token", "refresh_token", "id_token", "client_secret", "code_verifier",
                 "password")

# eyJ<header>.eyJ<claims>.<signature of 10+ chars>
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{10,}")
# token68 (RFC 7235) after an auth scheme; `#` is taken too so that a fingerprint is seen whole
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9_-])(bearer|dpop|basic)[ \t]+([A-Za-z0-9._~+/#-]{8,}=*)(?![A-Za-z0-9._~+/#=-])")
_NAMES = "|".join(SECRET_PARAMS)
# name=value (query, form, fragment, free text); the name must stand alone (not `code_challenge=`)
_PAIR = re.compile(rf"(?i)(?<![A-Za-z0-9_.-])({_NAMES})=([^&\s\"'<>,;)}}\]]+)")
# "name": "value" / 'name': 'value' (JSON, Python reprs)
_JSON_PAIR = re.compile(rf"(?i)([\"'])({_NAMES})\1\s*:\s*([\"'])((?:(?!\3)[^\\]|\\.)*)\3")
# what a fingerprint looks like: label#hex (label may be any parameter or token kind)
_FINGERPRINT = re.compile(r"[A-Za-z0-9_.~-]{1,40}#[0-9a-f]{6,64}")
# the key/value tables of the report: <th>name</th><td …>value</td>
_TABLE_PAIR = re.compile(rf"(?i)<th>({_NAMES})</th><td[^>]*>([^<]*)</td>")
_SEGMENT = re.compile(r'data-hop="(\d+)"|id="finding-(\d+)"')
_WORDS = re.compile(r"[A-Za-z]+(?:[_-][A-Za-z]+)*")


class LeakError(Exception):
    """The report would carry a raw secret; the message is one sentence naming what and where."""


@dataclass(frozen=True)
class Leak:
    kind: str  # "a signed JWT", "a Bearer value", "a raw `code` value", ...
    where: str  # "hop 12", "finding 2", "the report header"
    excerpt: str  # a short, masked hint of the value (first 4 characters), for the developer

    def __str__(self) -> str:
        return f"{self.kind} in {self.where} ({self.excerpt})"


def _is_fingerprint(value: str) -> bool:
    return bool(_FINGERPRINT.fullmatch(value))


def _mask(value: str) -> str:
    return value[:4] + "…" if len(value) > 4 else "…"


def _scan_plain(text: str) -> list[tuple[str, str]]:
    """(kind, value) pairs found in decoded text."""
    out: list[tuple[str, str]] = []
    if "eyJ" in text:
        for m in _JWT.finditer(text):
            out.append(("a signed JWT", m.group(0)))
    low = text.lower()
    if "bearer" in low or "dpop" in low or "basic" in low:
        for m in _BEARER.finditer(text):
            value = m.group(2)
            if _is_fingerprint(value.rstrip("=")) or _JWT.fullmatch(value):
                continue  # fingerprints are safe; JWTs are reported once, above
            if "#" not in value and len(value) < 24 and _WORDS.fullmatch(value.rstrip("=")):
                continue  # prose: "Bearer authentication failed", "bearer token_type"
            out.append((f"a {m.group(1).capitalize()} credential", value))
    if "=" in text:
        for m in _PAIR.finditer(text):
            value = m.group(2)
            decoded = unquote_plus(value)
            if not _safe_value(decoded, text, m.start(2)):
                out.append((f"a raw `{m.group(1).lower()}` value", value))
    if ":" in text:
        for m in _JSON_PAIR.finditer(text):
            value = m.group(4)
            if value and not _safe_value(value, text, m.start(4)):
                out.append((f"a raw `{m.group(2).lower()}` value", value))
    return out


def _safe_value(value: str, text: str, pos: int) -> bool:
    if not value or _is_fingerprint(value):
        return True
    if value.startswith(PASSWORD_SENT) or text.startswith(PASSWORD_SENT, pos):
        return True
    if unquote_plus(text[pos:pos + 60]).startswith(PASSWORD_SENT):
        return True
    return False


def scan(text: str) -> list[Leak]:
    """Every leak in an HTML (or plain) text, each with the hop or finding it sits in."""
    leaks: list[Leak] = []
    seen: set[tuple[str, str, str]] = set()
    where = "the report header"
    pos = 0
    for m in _SEGMENT.finditer(text):
        _scan_segment(text[pos:m.start()], where, leaks, seen)
        where = f"hop {m.group(1)}" if m.group(1) else f"finding {m.group(2)}"
        pos = m.start()
    _scan_segment(text[pos:], where, leaks, seen)
    return leaks


def _scan_segment(segment: str, where: str, leaks: list[Leak], seen: set) -> None:
    if not segment:
        return
    plain = html.unescape(segment) if "&" in segment else segment
    found = _scan_plain(plain)
    if "<th>" in segment:
        for m in _TABLE_PAIR.finditer(segment):
            value = html.unescape(m.group(2)).strip()
            if not _safe_value(value, value, 0):
                found.append((f"a raw `{m.group(1).lower()}` value", value))
    if "%" in plain:
        decoded = unquote_plus(plain)
        if decoded != plain:
            found += _scan_plain(decoded)
    for kind, value in found:
        key = (kind, where, value)
        if key not in seen:
            seen.add(key)
            leaks.append(Leak(kind, where, _mask(value)))


def find_leaks(text: str) -> list[str]:
    """Human-readable descriptions of every raw secret in `text`; empty when the text is safe."""
    return [str(leak) for leak in scan(text)]


def describe(leaks: list[Leak], path: str) -> str:
    """One sentence for the user when a report is refused."""
    first = leaks[0]
    more = f" and {len(leaks) - 1} more" if len(leaks) > 1 else ""
    return (f"refusing to write {path}: the report would contain {first.kind} in {first.where}{more} "
            f"(the database should only hold fingerprints; please report this as an authtrace bug).")
