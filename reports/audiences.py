"""Which audience an API host accepts, as data. GUID and URI forms; trailing slashes ignored.

Used to say "a token for Azure Resource Manager was sent to a Foundry project endpoint". Hosts not
listed here are judged only by protocol evidence (a 401 naming the audience, an RFC 8707 resource
URI that does not match) or by the user's own `--expect-audience HOST=AUD`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from authtrace.store.records import Params


@dataclass(frozen=True)
class Audience:
    label: str
    names: tuple[str, ...]  # accepted `aud` values / requested resources, normalised
    hosts: tuple[str, ...]  # host regexes of the APIs that want this audience
    path: str = ""  # when set, only paths matching this regex (the first matching entry wins)


AUDIENCES: tuple[Audience, ...] = (
    Audience("Azure Resource Manager",
             ("797f4846-ba00-4fd7-ba43-dac1f8f63013", "https://management.azure.com",
              "https://management.core.windows.net"), (r"^management\.azure\.com$",)),
    Audience("Microsoft Graph",
             ("00000003-0000-0000-c000-000000000000", "https://graph.microsoft.com"),
             (r"^graph\.microsoft\.com$",)),
    Audience("Azure AI Foundry (https://ai.azure.com)", ("https://ai.azure.com",),
             (r"\.services\.ai\.azure\.com$",), path=r"^/api/projects(/|$)"),
    Audience("Azure AI Foundry (https://ai.azure.com)", ("https://ai.azure.com",), (r"^ai\.azure\.com$",)),
    # the same resource's model endpoints (/models, /openai) also take Azure AI services tokens
    Audience("Azure AI services (https://cognitiveservices.azure.com)",
             ("https://cognitiveservices.azure.com", "https://ai.azure.com"),
             (r"\.cognitiveservices\.azure\.com$", r"\.openai\.azure\.com$", r"\.services\.ai\.azure\.com$")),
    Audience("Azure Key Vault", ("https://vault.azure.net", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"),
             (r"\.vault\.azure\.net$",)),
    Audience("Azure Storage", ("https://storage.azure.com", "e406a681-f3d4-42a8-90b6-c2b029497af1"),
             (r"\.(blob|queue|table|file|dfs)\.core\.windows\.net$",)),
    # the Bot Connector and the token service; Direct Line takes its own tokens, so it is not listed
    Audience("Bot Framework", ("https://api.botframework.com",),
             (r"^api\.botframework\.com$", r"(^|\.)token\.botframework\.com$", r"^smba\.trafficmanager\.net$")),
)

OIDC_SCOPES = {"openid", "profile", "email", "offline_access", "address", "phone"}


def norm(aud: str) -> str:
    return str(aud).strip().rstrip("/").lower()


def label_of(aud: str) -> str | None:
    n = norm(aud)
    for a in AUDIENCES:
        if n in a.names:
            return a.label
    return None


def expected_for(host: str, extra: dict[str, str] | None = None, path: str = "") -> tuple[str, set[str]] | None:
    """(label, accepted audiences) for an API host and path, or None when the host is unknown."""
    host = host.lower()
    for h, aud in (extra or {}).items():
        if host == h.lower() or (h.startswith("*.") and host.endswith(h[1:].lower())):
            return aud, {norm(aud)}
    for a in AUDIENCES:
        if any(re.search(p, host) for p in a.hosts) and (not a.path or re.search(a.path, path or "")):
            return a.label, set(a.names)
    return None


def resources_requested(params: Params) -> set[str]:
    """Resources named by a request: RFC 8707 / Entra v1 `resource`, and the resource part of
    URI- or GUID-prefixed scopes (`https://ai.azure.com/.default` -> `https://ai.azure.com`)."""
    out: set[str] = set()
    res = params.get("resource") or params.get("audience")
    if res:
        out.add(norm(res))
    for s in (params.get("scope") or "").split():
        if s.lower() in OIDC_SCOPES:
            continue
        if "://" in s or re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-", s, re.I) or s.startswith("api://"):
            base = s.rsplit("/", 1)[0] if s.count("/") > (2 if "://" in s else 0) else s
            out.add(norm(base))
    return out
