"""The last gate before a report leaves the machine: does the output hold a raw secret?

The database holds no raw secret (codes, tokens and secrets are fingerprints such as
``code#3f9a1c20e4``, passwords the marker ``[password sent, not stored]``), so a clean report
never trips this check. It is the backstop for a bug anywhere upstream: a decoder that kept a
value, a check that quoted one, a template that printed the wrong field.

What counts as a leak:
* a JWT with a signature segment (``eyJ….eyJ….<signature>``): a usable token;
* ``Bearer <value>`` (also ``DPoP``, ``Basic``) whose value is not a fingerprint;
* a base64 SAML message (what a SAMLResponse or SAMLRequest parameter carries), or raw SAML XML of an
  assertion or a signature value (a decoded Response that would still sign someone in);
* a value of ``code``, ``access_token``, ``refresh_token``, ``id_token``, ``client_secret``,
  ``code_verifier``, ``password``, ``SAMLResponse``, ``SAMLRequest`` or ``SAMLart`` in ``name=value``
  form (also percent-encoded, ``name%3Dvalue``, as inside an encoded ``redirect_uri``), in
  ``"name": "value"`` form, or as a row
  ``<th>name</th><td>value</td>`` of the report's own tables, that is not a fingerprint and not the
  password marker.

The text is HTML, read as a reader would see it: quotes may be written ``&#34;``/``&quot;``, and values
are unescaped before they are judged. The scan is linear (``str.find`` for the names, a regex match at
each hit), so a 20 MB report is checked in a fraction of a second. Each leak is named with where it
sits: the hop (each hop of the timeline starts with ``data-hop="N"``) or the finding
(``id="finding-N"``), never with any part of the value.
"""
from __future__ import annotations

import bisect
import html
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

PASSWORD_SENT = "[password sent, not stored]"
SECRET_PARAMS = ("code", "access_token", "refresh_token", "id_token", "client_secret", "code_verifier",
                 "password", "samlresponse", "samlrequest", "samlart")
SCHEMES = ("bearer", "dpop", "basic")

# eyJ<header>.eyJ<claims>.<signature of 10+ chars>
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{10,}")
# after a scheme name: token68 (RFC 7235); `#` is taken too so that a fingerprint is seen whole
_CREDENTIAL = re.compile(r"[ \t]+([A-Za-z0-9._~+/#-]{8,}=*)(?![A-Za-z0-9._~+/#=-])")
# after a parameter name: =value or %3Dvalue (query, form, fragment, free text, encoded URLs)
_ASSIGN = re.compile(r"(=|%3[dD])([^&\s\"'<>,;)}\]]+)")
_QUOTE = r"(?:\"|'|&#34;|&quot;|&#39;|&#x27;|&apos;)"
# after a quoted parameter name: ": "value" (JSON, Python reprs; quotes possibly escaped)
_JSON_VALUE = re.compile(rf"{_QUOTE}\s*:\s*{_QUOTE}((?:(?!{_QUOTE})[^\\<\n]|\\.){{0,8192}}){_QUOTE}")
_QUOTE_BEFORE = re.compile(rf"{_QUOTE}$")
# after "<th>name": the report's key/value table cell
_TABLE_VALUE = re.compile(r"</th><td[^>]*>([^<]*)</td>")
# a base64 SAML message (`<samlp:`, `<saml2p:`, `<saml:`, `<saml2:`, `<?xml ` encoded: PHNhbWxw, PHNhbWwy,
# PHNhbWw6, PD94bWwg) of some length: a Response posted with the HTTP-POST binding carries its assertion
_SAML_B64 = re.compile(r"(?<![A-Za-z0-9+/])(?:PHNhbWxw|PHNhbWwy|PHNhbWw6|PD94bWwg)[A-Za-z0-9+/]{80,}")
# raw XML of an assertion or a signature value, as written or escaped into HTML
_SAML_XML = re.compile(r"(?:<|&lt;|&#60;|&#x3c;)(?:[A-Za-z0-9_-]{1,20}:)?(?:Assertion|EncryptedAssertion|"
                       r"SignatureValue)(?=[\s>/&])", re.I)
# what a fingerprint looks like: label#hex (label may be any parameter or token kind)
_FINGERPRINT = re.compile(r"[A-Za-z0-9_.~-]{1,40}#[0-9a-f]{6,64}")
_WORDS = re.compile(r"[A-Za-z]+(?:[_-][A-Za-z]+)*")
_SEGMENT = re.compile(r'data-hop="([^"<>]{1,40})"|id="finding-(\d+)"')
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class LeakError(Exception):
    """The report would carry a raw secret. `str(e)` is one sentence naming what was found and where
    (the caller adds which file was refused); `leaks` lists every finding and `path` the refused file."""

    def __init__(self, message: str, leaks: list[Leak] | None = None, path: str | None = None):
        super().__init__(message)
        self.leaks = leaks or []
        self.path = path


@dataclass(frozen=True)
class Leak:
    kind: str  # "a signed JWT", "a Bearer credential", "a raw `code` value"
    where: str  # "hop 12", "finding 2", "the report header"
    pos: int  # offset in the text

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}"


def _is_fingerprint(value: str) -> bool:
    return bool(_FINGERPRINT.fullmatch(value))


# an error code in words (`"code": "PermissionDenied"`, `"code": "invalid_request"`), not an authorization
# code: the same rule as addons/secrets.py ERROR_CODE_WORDS, kept here on its own as the backstop should be
_ERROR_CODE_WORDS = re.compile(r"(?:[A-Z][a-z]+){1,8}|[a-z]+(?:_[a-z]+){1,8}|[A-Za-z]+(?: [A-Za-z]+){1,8}")


_NOT_VALUES = frozenset({"null", "none", "undefined", "true", "false"})  # JSON's and JavaScript's "no value"


def _safe_value(value: str, name: str = "") -> bool:
    value = value.strip()
    return (not value or _is_fingerprint(value) or value.startswith(PASSWORD_SENT) or value.lower() in _NOT_VALUES
            or (name == "code" and bool(_ERROR_CODE_WORDS.fullmatch(value))))


def _standalone(low: str, i: int) -> bool:
    """The name at i is a name of its own: not the tail of `response_code` or `x.code`."""
    if i == 0:
        return True
    if low[i - 1] not in _NAME_CHARS:
        return True
    return i >= 3 and low[i - 3:i] in ("%3f", "%26", "%23", "%20", "%2c")  # encoded ? & # space ,


def _hits(text: str) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    if "eyJ" in text:
        found += [("a signed JWT", m.start()) for m in _JWT.finditer(text)]
    if "PH" in text or "PD94" in text:
        found += [("a base64 SAML message", m.start()) for m in _SAML_B64.finditer(text)]
    if "Assertion" in text or "SignatureValue" in text:
        found += [("raw SAML XML (an assertion or a signature)", m.start()) for m in _SAML_XML.finditer(text)]
    low = text.lower()
    for scheme in SCHEMES:
        i = low.find(scheme)
        while i != -1:
            m = _CREDENTIAL.match(text, i + len(scheme)) if _standalone(low, i) else None
            if m:
                value = m.group(1)
                if not (_is_fingerprint(value.rstrip("=")) or _JWT.fullmatch(value)
                        or ("#" not in value and len(value) < 24 and _WORDS.fullmatch(value.rstrip("=")))):
                    found.append((f"a {scheme.capitalize() if scheme != 'dpop' else 'DPoP'} credential", i))
            i = low.find(scheme, i + 1)
    for name in SECRET_PARAMS:
        i = low.find(name)
        n = len(name)
        while i != -1:
            end = i + n
            if _standalone(low, i) and (end >= len(low) or low[end] not in _NAME_CHARS or low.startswith("%3d", end)):
                kind = f"a raw `{name}` value"
                m = _ASSIGN.match(text, end)
                if m:
                    value = m.group(2)
                    if m.group(1) != "=":  # nested in an encoded URL: the value ends at an encoded &
                        value = re.split(r"%26", value, flags=re.I)[0]
                    if not (_safe_value(unquote_plus(html.unescape(value)), name)
                            or text.startswith(PASSWORD_SENT, m.start(2))):
                        found.append((kind, i))
                elif _QUOTE_BEFORE.search(low, max(0, i - 6), i):
                    m = _JSON_VALUE.match(text, end)
                    if m and not _safe_value(html.unescape(m.group(1)), name):
                        found.append((kind, i))
                elif low.startswith("<th>", i - 4):
                    m = _TABLE_VALUE.match(text, end)
                    if m and not _safe_value(html.unescape(m.group(1)), name):
                        found.append((kind, i))
            i = low.find(name, end)
    return found


def scan(text: str) -> list[Leak]:
    """Every leak in an HTML (or plain) text, each with the hop or finding it sits in."""
    found = _hits(text)
    if not found:
        return []
    marks = [(m.start(), f"hop {m.group(1)}" if m.group(1) else f"finding {m.group(2)}")
             for m in _SEGMENT.finditer(text)]
    starts = [p for p, _ in marks]
    leaks: list[Leak] = []
    seen: set[tuple[str, str]] = set()
    for kind, pos in sorted(found, key=lambda kp: kp[1]):
        k = bisect.bisect_right(starts, pos) - 1
        where = marks[k][1] if k >= 0 else "the report header"
        if (kind, where) not in seen:
            seen.add((kind, where))
            leaks.append(Leak(kind, where, pos))
    return leaks


def find_leaks(text: str) -> list[str]:
    """What raw secrets `text` holds and where ("a signed JWT in hop 12"); empty when it is safe."""
    return [str(leak) for leak in scan(text)]


def describe(leaks: list[Leak]) -> str:
    """One sentence for the user when a report is refused (without the file name, which the caller
    prints: "authtrace: refusing to write out.html: the report would contain …")."""
    first = leaks[0]
    more = f" (and {len(leaks) - 1} more)" if len(leaks) > 1 else ""
    return (f"the report would contain {first.kind} in {first.where}{more}, although the database should hold "
            f"only fingerprints: please report this as an authtrace bug")
