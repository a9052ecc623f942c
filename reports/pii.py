"""Personal data masked for stricter sharing (`--redact-pii`): claims and parameters by name (email,
upn, name, oid, ipaddr, …), and e-mail addresses, IP addresses and the names found in claims anywhere
in text. Equal values get equal masks (`[email 1]`), so "the same user at both hops" stays visible."""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from authtrace.store.records import Hop, Token

# claims (and parameters) whose value identifies a person
PII_CLAIMS = {"email": "email", "emails": "email", "upn": "user", "preferred_username": "user",
              "unique_name": "user", "name": "name", "given_name": "name", "family_name": "name",
              "oid": "oid", "ipaddr": "ip", "login_hint": "user", "username": "user", "login": "user",
              "verified_primary_email": "email", "verified_secondary_email": "email"}


def compact(v: Any) -> str:
    """A value as one line of text: strings as they are, the rest as compact JSON."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    try:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(v)


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?<![\w./:-])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.-])")
_IPV6 = re.compile(r"(?i)(?<![\w:.-])(?=[0-9a-f:]*::|(?:[0-9a-f]{1,4}:){7})(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}"
                   r"(?![\w:.-])")


class Pii:
    """Masks identifying values: claims and parameters by name (email, upn, name, oid, ipaddr, …), and
    e-mail addresses, IP addresses and the names found in claims anywhere in text. Equal values get
    equal masks (`[email 1]`), so "the same user at both hops" stays visible."""

    def __init__(self, enabled: bool, tokens: Iterable[Token] = (), names: Iterable[str] = ()):
        self.enabled = enabled
        self.masks: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}
        self.known: re.Pattern[str] | None = None
        self.by_value: dict[str, str] = {}
        if not enabled:
            return
        for t in tokens:
            claims = t.claims
            if isinstance(claims, dict):
                for k, label in PII_CLAIMS.items():
                    v = claims.get(k)
                    if isinstance(v, str) and len(v) >= 3:
                        self.by_value[v.lower()] = self.mask(label, v)
        for v in names:  # SAML NameIDs: the user, wherever the capture names them
            if len(v) >= 3:
                self.by_value[v.lower()] = self.mask("user", v)
        if self.by_value:
            alternatives = "|".join(re.escape(v) for v in sorted(self.by_value, key=len, reverse=True))
            # whole values only: the name "Al" must not eat into "Alice" or "al@contoso.test"
            self.known = re.compile(rf"(?<![\w@.%-])(?:{alternatives})(?![\w@.%-])", re.IGNORECASE)

    def mask(self, label: str, value: str) -> str:
        key = (label, value.lower())
        m = self.masks.get(key)
        if m is None:
            n = self.counts[label] = self.counts.get(label, 0) + 1
            m = self.masks[key] = f"[{label} {n}]"
        return m

    def text(self, s: Any) -> Any:
        if not self.enabled or not isinstance(s, str) or not s:
            return s
        if self.known is not None:
            s = self.known.sub(lambda m: self.by_value.get(m.group(0).lower(), "[pii]"), s)
        if "@" in s or "%40" in s:
            s = _EMAIL.sub(self._email, s)
        if "." in s:
            s = _IPV4.sub(lambda m: self.mask("ip", m.group(0)), s)
        if "::" in s or s.count(":") >= 7:
            s = _IPV6.sub(lambda m: self.mask("ip", m.group(0)), s)
        return s

    def _email(self, m: re.Match[str]) -> str:
        value = m.group(0).replace("%40", "@")
        return self.by_value.get(value.lower()) or self.mask("email", value)

    def claim(self, key: Any, v: Any) -> Any:
        if not self.enabled:
            return v
        label = PII_CLAIMS.get(key.lower()) if isinstance(key, str) else None
        if label is not None and v is not None:
            if isinstance(v, list):
                return [self.mask(label, compact(x)) for x in v]
            return self.mask(label, compact(v))
        return self.deep(v)

    def deep(self, v: Any) -> Any:
        if not self.enabled:
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {k: self.claim(k, x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.deep(x) for x in v]
        return v


def of_hops(enabled: bool, hops: Iterable[Hop]) -> Pii:
    """The masker of a session: the identifying claims of its tokens and the NameIDs of its SAML messages."""
    hops = list(hops)
    return Pii(enabled, [t for h in hops for t in h.tokens], saml_names(hops) if enabled else ())


def saml_names(hops: Iterable[Hop]) -> list[str]:
    """Every NameID the SAML messages of these hops carry (a LogoutRequest's, each assertion's subject)."""
    out: list[str] = []
    for h in hops:
        for m in (h.params.saml, h.answer.saml):
            while m is not None:
                out += [v for v in (m.subject_nameid, *(a.subject_nameid for a in m.assertions)) if v]
                m = m.inner
    return out
