"""Secret handling: what counts as a secret, and how it becomes a fingerprint.

A fingerprint is a short HMAC-SHA256 of the value under the database's random key, shown as
``code#3f9a1c20e4``: equal values keep equal fingerprints (so reuse and mismatches stay visible)
while the value itself, even a short one, cannot be recovered from a report.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

# Parameter and field names (lower case) whose values are secrets.
SECRET_NAMES = frozenset({
    "code", "access_token", "refresh_token", "id_token", "id_token_hint", "client_secret",
    "client_assertion", "assertion", "code_verifier", "device_code", "subject_token", "actor_token",
    "token", "samlresponse", "samlrequest", "samlart", "logout_token", "otc", "flowtoken", "canary",
    "apikey", "api_key", "api-key", "x-api-key", "secret", "sessiontoken", "session_token",
    "jwt", "request", "wresult", "password_reset_token", "refresh_token_hint",
})
# Low-entropy user secrets: not even fingerprinted, only marked as sent.
PASSWORD_NAMES = frozenset({"password", "passwd", "pwd", "pass", "new_password", "newpassword",
                            "old_password", "oldpassword", "pin", "otp", "totp", "credentials"})
PASSWORD_SENT = "[password sent, not stored]"

JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic|dpop|negotiate|ntlm)\s+([A-Za-z0-9._~+/=-]{8,})")
# quotes as written or escaped: JSON inside JSON strings (\", \\\") and HTML-escaped JSON (&quot;)
_Q = r"(?:\\*[\"']|&quot;|&#0*3[49];|&#x0*2[27];)?"


def _alternation(words: frozenset[str]) -> tuple[str, str]:
    """The names grouped by first letter, behind a look-ahead on those letters: about as fast as a
    generic name pattern. Only secret names may match: a generic one would swallow what follows it
    ("Error: code=X" read as name "Error", value "code=X", and the code left as it was)."""
    groups: dict[str, list[str]] = {}
    for w in sorted(words, key=len, reverse=True):
        groups.setdefault(w[0], []).append(re.escape(w[1:]))
    first = "".join(sorted(groups))
    return f"(?=[\\\\\"'&{first}])", "|".join(f"{re.escape(c)}(?:{'|'.join(r)})" for c, r in sorted(groups.items()))


_AHEAD, _NAMES = _alternation(SECRET_NAMES | PASSWORD_NAMES)
# name, separator, value; inside a look-ahead so that finditer yields overlapping matches too:
# in `code= "access_token": "X"` both values are secrets
# a quoted value runs to its closing quote (spaces included: `"code": "Bad Request"` is one value, as a
# reader and the report's leak check see it); an unquoted one to the next separator
_PAIRS_RE = re.compile(r"(?i)(?=" + _AHEAD + "(" + _Q + r")\b(" + _NAMES + r")\1(\s*[:=]\s*)(" + _Q + r")"
                       r"((?<=[\"'])[^\"'\\<\n]{1,2000}(?=[\"'\\])|(?<=;)[^&<\n]{1,2000}(?=&)"
                       r"|[^\"'&\s,<>;}\\]+))")


# `"code": "PermissionDenied"` in an API's error body is an error code, not an authorization code: words
# in CamelCase or snake_case, or a phrase. A random code is neither (letters-only CamelCase of 20 random
# base64 characters: about 1 in 10^8). reports/leakcheck.py judges `code` values by the same rule.
ERROR_CODE_WORDS = re.compile(r"(?:[A-Z][a-z]+){1,8}|[a-z]+(?:_[a-z]+){1,8}|[A-Za-z]+(?: [A-Za-z]+){1,8}")

# SAML in free text (an error page that echoes the message): a base64 message (`<samlp:`, `<saml2p:`, `<saml:`,
# `<saml2:`, `<?xml ` encoded), an assertion's XML (as written or HTML-escaped, cut short or whole), a signature value
_SAML_B64_RE = re.compile(r"(?<![A-Za-z0-9+/])(?:PHNhbWxw|PHNhbWwy|PHNhbWw6|PD94bWwg)[A-Za-z0-9+/]{40,}={0,2}")
_SAML_ASSERTION_RE = re.compile(
    r"(?is)(?:<|&lt;)(?:[\w.-]{1,20}:)?(?:Encrypted)?Assertion(?=[\s>/&]).*?"
    r"(?:(?:</|&lt;/)(?:[\w.-]{1,20}:)?(?:Encrypted)?Assertion\s*(?:>|&gt;)|$)")
_SAML_SIGVALUE_RE = re.compile(r"(?i)((?:<|&lt;)(?:[\w.-]{1,20}:)?SignatureValue[^>&]*(?:>|&gt;))[^<&]+")
SAML_XML_REMOVED = "[SAML assertion, not stored]"


def _memo(seen: dict[str, str], value: str, longest: int, redact: Callable[[str], str]) -> str:
    """`redact(value)`, remembered for values up to `longest` characters (at most 4,096 of them)."""
    if len(value) > longest:
        return redact(value)
    done = seen.get(value)
    if done is None:
        if len(seen) >= 4096:
            seen.clear()
        done = seen[value] = redact(value)
    return done


class Fingerprinter:
    def __init__(self, key: bytes):
        self.key = key
        # free text seen before (the same User-Agent, Accept or Content-Type on every request): its
        # storable form is the same, so it is redacted once
        self._texts: dict[str, str] = {}
        self._urls: dict[str, str] = {}  # the same for URLs (an API called again and again)

    def fp(self, value: str | bytes, label: str) -> str:
        if isinstance(value, str):
            try:
                data = value.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # a surrogate that is no escaped byte
                data = value.encode("utf-8", "surrogatepass")
        else:
            data = value
        return f"{label}#{hmac.new(self.key, data, hashlib.sha256).hexdigest()[:10]}"

    def value(self, name: str, value: str) -> str:
        """The storable form of one named value: itself, a fingerprint, or a 'password sent' mark."""
        low = name.lower()
        if low in PASSWORD_NAMES:
            return PASSWORD_SENT
        if low in SECRET_NAMES:
            return self.fp(value, low)
        if JWT_RE.fullmatch(value):
            return self.fp(value, "jwt")
        return self.text(value)

    def params(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in pairs:
            if k not in out:  # OAuth forbids repeats; the first one is what servers read
                out[k] = self.value(k, v)
        return out

    def url(self, url: str) -> str:
        """The URL with every secret in its query and fragment replaced by a fingerprint."""
        return _memo(self._urls, url, 2048, self._url)

    def _url(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            query = self._qs(parts.query)
            frag = self._qs(parts.fragment) if "=" in parts.fragment else self.text(parts.fragment)
        except ValueError:  # not a URL, or bytes that no encoding can write back
            return self.text(url)
        netloc = parts.netloc
        if "@" in netloc and ":" in netloc.rpartition("@")[0]:  # user:password@host
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:{quote(PASSWORD_SENT, safe='')}@{host}"
        return urlunsplit((parts.scheme, netloc, self.text(parts.path), query, frag))

    def _qs(self, qs: str) -> str:
        if not qs:
            return ""
        pairs = parse_qsl(qs, keep_blank_values=True)
        if not pairs:
            return self.text(qs)
        return urlencode([(k, self.value(k, v)) for k, v in pairs], safe="/:@!$'()*,;", errors="surrogateescape")

    def text(self, text: str) -> str:
        """Free text (error bodies, descriptions): JWTs, auth header values and name=secret pairs replaced."""
        return _memo(self._texts, text, 512, self._text) if text else text

    def _text(self, text: str) -> str:
        text = JWT_RE.sub(lambda m: self.fp(m.group(0), "jwt"), text)
        if "PHNhbW" in text or "PD94bWwg" in text:
            text = _SAML_B64_RE.sub(lambda m: self.fp(m.group(0), "saml"), text)
        if "Assertion" in text or "SignatureValue" in text:
            text = _SAML_ASSERTION_RE.sub(SAML_XML_REMOVED, text)
            text = _SAML_SIGVALUE_RE.sub(lambda m: m.group(1) + "[signature value, not stored]", text)
        text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {self.fp(m.group(2), m.group(1).lower())}", text)

        spans: list[tuple[int, int, str]] = []
        for m in _PAIRS_RE.finditer(text):
            name, value = m.group(2).lower(), m.group(5)
            if name in PASSWORD_NAMES:
                spans.append((m.start(5), m.end(5), PASSWORD_SENT))
            elif "#" not in value and not (name == "code" and ERROR_CODE_WORDS.fullmatch(value)):
                spans.append((m.start(5), m.end(5), self.fp(value, name)))
        if not spans:
            return text
        out, pos = [], 0
        for start, end, repl in sorted(spans):
            if start < pos:  # inside a value already replaced
                continue
            out += [text[pos:start], repl]
            pos = end
        return "".join(out) + text[pos:]


def s256(verifier: str) -> str:
    """RFC 7636 S256 transform: what the code_challenge must equal."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
