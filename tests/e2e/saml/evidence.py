"""What a saved capture (``record --save-flows``) holds about SAML, decoded with authtrace's own decoder.

Reads the ``.mitm`` file with mitmproxy's FlowReader and hands every request that carries a
SAMLRequest, SAMLResponse or SAMLart (query: HTTP-Redirect, form: HTTP-POST) to
``authtrace.addons.saml.decode_binding``; metadata documents seen in the capture teach the IdP's
signing certificates first, as authtrace will do. Nothing raw is returned: only records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import http
from mitmproxy.io import FlowReader

from authtrace.addons import saml


@dataclass(frozen=True)
class SamlHop:
    """One request that carried a SAML message, and the answer it got."""

    method: str
    url: str  # scheme://host:port/path, no query (the query holds the message)
    status: int | None
    started: float  # epoch seconds the request started
    answer: str  # the first 300 characters of the answer's body (the test SP's own words)
    message: saml.SamlMessage

    @property
    def path(self) -> str:
        return "/" + self.url.split("/", 3)[3] if self.url.count("/") >= 3 else "/"


@dataclass
class Evidence:
    flows: int = 0
    hops: list[SamlHop] = field(default_factory=list)
    metadata: list[saml.SamlMetadata] = field(default_factory=list)

    def of(self, kind: str) -> list[SamlHop]:
        return [h for h in self.hops if h.message.kind == kind]


def _http_flows(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as f:
        return [fl for fl in FlowReader(f).stream() if isinstance(fl, http.HTTPFlow)]


def read(
    path: Path,
    *,
    idp_certs: Sequence[saml.CertLike] = (),
    sp_certs: Sequence[saml.CertLike] = (),
    learn_from_capture: bool = True,
) -> Evidence:
    """Decode the SAML traffic of a saved capture.

    Responses are checked against ``idp_certs`` plus (``learn_from_capture``) the signing
    certificates of any IdP metadata in the capture; requests against ``sp_certs``.
    """
    flows = _http_flows(path)
    ev = Evidence(flows=len(flows))
    learned: list[saml.CertLike] = list(idp_certs)
    for fl in flows:
        body = fl.response.get_content(strict=False) if fl.response else None
        if body and b"EntityDescriptor" in body[:2000]:
            meta = saml.decode_metadata(body)
            ev.metadata.append(meta)
            if learn_from_capture:
                learned.extend(meta.idp_signing_certs)
    for fl in flows:
        req = fl.request
        message = None
        if req.query and any(k in req.query for k in ("SAMLRequest", "SAMLResponse", "SAMLart")):
            raw_query = req.path.split("?", 1)[1] if "?" in req.path else None
            params = dict(req.query)
            certs = learned if "SAMLResponse" in params else sp_certs
            message = saml.decode_binding(params, binding="redirect", raw_query=raw_query, certs=certs)
        elif req.method == "POST" and req.urlencoded_form:
            params = dict(req.urlencoded_form)
            certs = learned if "SAMLResponse" in params else sp_certs
            message = saml.decode_binding(params, binding="post", certs=certs)
        if message is None:
            continue
        answer = fl.response.get_text(strict=False) or "" if fl.response else ""
        ev.hops.append(SamlHop(
            method=req.method, url=req.pretty_url.split("?", 1)[0], status=fl.response.status_code if fl.response else None,
            started=req.timestamp_start, answer=answer[:300], message=message,
        ))  # fmt: skip
    return ev
