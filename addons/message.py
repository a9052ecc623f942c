"""One request and its answer as the hop builder reads them: `Exchange`.

Live capture and `.mitm` imports make an Exchange from a mitmproxy flow (`from_flow`); other
sources (HAR entries) can fill the same record without building a flow. Headers are one plain dict
(lower-case names, first value wins: a hop reads dozens of headers and each mitmproxy lookup scans
every name), bodies are decoded text capped at MAX_BODY, and nothing here raises on broken input.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from mitmproxy import http

MAX_BODY = 2 * 1024 * 1024
TEXT_TYPES = ("json", "text", "html", "x-www-form-urlencoded", "javascript", "xml")


@dataclass(slots=True, kw_only=True)
class Exchange:
    method: str
    url: str  # as the user sees it (Host header, not the IP a tunnel went to)
    host: str  # lower case
    started: float
    ended: float | None = None  # when the answer finished
    request_headers: dict[str, str] = field(default_factory=dict)
    request_text: str = ""  # decoded body, capped
    status: int | None = None  # None: no answer
    response_headers: dict[str, str] = field(default_factory=dict)
    response_text: str = ""  # decoded body of a text-like answer, capped
    set_cookie_names: list[str] = field(default_factory=list)
    transport_error: str | None = None  # why there was no answer

    @property
    def duration_ms(self) -> float | None:
        if self.started and self.ended:
            return round((self.ended - self.started) * 1000, 1)
        return None

    def cookies_sent(self) -> list[tuple[str, str]]:
        """Name/value pairs of the Cookie header (RFC 6265 §5.4), leniently split."""
        out = []
        for part in self.request_headers.get("cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name:
                out.append((name.strip(), value.strip()))
        return out


def pairs(qs: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(qs, keep_blank_values=True)
    except ValueError:
        return []


def lower_keys(items: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in items:
        out.setdefault(k.lower(), v)
    return out


def json_body(text: str) -> Any:
    s = text.lstrip()
    if not s.startswith(("{", "[")):
        return None
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        return None


def header_dict(headers: http.Headers) -> dict[str, str]:
    h: dict[str, str] = {}
    for k, v in headers.fields:
        h.setdefault(k.decode("latin-1").lower(), v.decode("utf-8", "surrogateescape"))
    return h


def body_text(msg: http.Message, encoding: str) -> str:
    """At most MAX_BODY bytes of the decoded body. Compressed bodies are inflated only up to that
    limit, so a small gzip bomb cannot make the proxy allocate its inflated size."""
    raw = msg.raw_content or b""
    enc = encoding.strip().lower()
    try:
        if enc in ("", "identity", "none"):
            out = raw
        elif enc in ("gzip", "x-gzip"):
            out = zlib.decompressobj(47).decompress(raw, MAX_BODY)
        elif enc == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send it
            try:
                out = zlib.decompressobj(15).decompress(raw, MAX_BODY)
            except zlib.error:
                out = zlib.decompressobj(-15).decompress(raw, MAX_BODY)
        elif enc == "zstd":
            import zstandard

            out = zstandard.ZstdDecompressor().stream_reader(raw).read(MAX_BODY)
        elif len(raw) <= MAX_BODY // 16:  # brotli has no output cap here: only small bodies
            out = msg.get_content(strict=False) or b""
        else:
            out = b""
    except Exception:  # noqa: BLE001 - any decoder's error: a lying Content-Encoding, use the bytes as sent
        out = raw
    return out[:MAX_BODY].decode("utf-8", "replace")


def is_text(content_type: str) -> bool:
    return not content_type or any(t in content_type for t in TEXT_TYPES)


def from_flow(flow: http.HTTPFlow) -> Exchange:
    req, resp = flow.request, flow.response
    rh = header_dict(req.headers)
    ex = Exchange(method=req.method, url=req.pretty_url, host=(req.pretty_host or "").lower(),
                  started=req.timestamp_start or 0.0, request_headers=rh)
    if req.method not in ("GET", "HEAD") and req.raw_content:
        ex.request_text = body_text(req, rh.get("content-encoding", ""))
    if resp is not None:
        sh = header_dict(resp.headers)
        ex.status = resp.status_code
        ex.response_headers = sh
        ex.ended = resp.timestamp_end or resp.timestamp_start
        if resp.raw_content and is_text(sh.get("content-type", "").lower()):
            ex.response_text = body_text(resp, sh.get("content-encoding", ""))
        ex.set_cookie_names = [_cookie_name(v) for v in resp.headers.get_all("set-cookie")]
    elif flow.error is not None:
        ex.transport_error = flow.error.msg or "connection failed"
    return ex


def _cookie_name(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].partition("=")[0].strip()
