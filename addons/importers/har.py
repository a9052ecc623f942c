"""HAR files (Chrome, Edge, Firefox, Safari exports) -> exchanges for the hop builder.

Parsed once with orjson; the cheap pre-filter runs on the plain entry dicts and only the entries
that may be auth hops become `Exchange`s, read straight from the entry (no mitmproxy flow: building
one per entry is what makes mitmproxy's HAR reader 5-15x slower than the parse, PERF.md). A
truncated HAR is read again with ijson, a streaming parser, to keep every entry before the damage.
"""
from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import ijson
import orjson

from authtrace.addons.context import CaptureContext
from authtrace.addons.importers.sniff import CaptureError, Progress
from authtrace.addons.message import MAX_BODY, Exchange, is_text
from authtrace.addons.roles import might_be_auth


def har_entries(path: str) -> tuple[list[Any], str | None]:
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        text = data.decode("utf-8", "replace").lstrip("\ufeff")  # a BOM or invalid UTF-8 must not lose the file
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            pos = getattr(e, "pos", None)
            pos = pos if isinstance(pos, int) and pos > 0 else len(text)
            # salvage only up to the damage: past it ijson would stop anyway, and a deeply nested tail
            # (orjson stops at depth 1024) would cost ijson memory quadratic in the depth
            return _har_entries_salvage(path, text[:pos].encode()), \
                f"{path} is not valid JSON past byte {pos} (truncated or damaged HAR); kept the entries before it."
    if not isinstance(doc, dict) or not isinstance(doc.get("log"), dict) \
            or not isinstance(doc["log"].get("entries"), list):
        raise CaptureError(f"{path} is JSON but not a HAR file (no log.entries list).")
    return doc["log"]["entries"], None


def _har_entries_salvage(path: str, data: bytes) -> list[Any]:
    """Every entry before the damage, read with a streaming parser."""
    out: list[Any] = []
    try:
        for entry in ijson.items(io.BytesIO(data), "log.entries.item", use_float=True):
            out.append(entry)
    except (ijson.JSONError, ValueError, UnicodeError, RecursionError):  # the damage: what came before is kept
        pass
    return out


def _get(d: object, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return default
        d = d.get(k)
    return d if d is not None else default


def _header_names(headers: object) -> str:
    """The header names of a HAR header list, lower-case, each between newlines (`"\\nhost\\n…"`), for
    cheap `"\\nname\\n" in` tests: one join and one lower() per list, not one per header. Fast path
    for the usual list of {"name", "value"} objects; anything else is read one element at a time."""
    if not isinstance(headers, list):
        return "\n"
    try:
        return "\n" + "\n".join([h["name"] for h in headers]).lower() + "\n"
    except (TypeError, KeyError, IndexError):
        names = [h.get("name") if isinstance(h, dict) else (h[0] if isinstance(h, (list, tuple)) and h else None)
                 for h in headers]
        return "\n" + "\n".join(n for n in names if isinstance(n, str)).lower() + "\n"


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _entry_candidate(entry: dict[str, Any], ctx: CaptureContext) -> bool:
    req = entry.get("request")
    if not isinstance(req, dict):
        return False
    url = req.get("url")
    if not isinstance(url, str):
        return False
    headers = req.get("headers")
    names = _header_names(headers)
    if str(req.get("method", "")).upper() == "OPTIONS":  # a CORS preflight is no hop: what it announces
        if "\naccess-control-request-headers\n" in names:  # is noted, as flow_to_hops does for live flows
            for h in headers if isinstance(headers, list) else ():
                if isinstance(h, dict) and str(h.get("name", "")).lower() == "access-control-request-headers":
                    value = h.get("value")
                    ctx.saw_preflight(url, value if isinstance(value, str) else "")
                    break
        return False
    has_auth = "\nauthorization\n" in names
    resp = _dict(entry.get("response"))
    challenge = "\nwww-authenticate\n" in _header_names(resp.get("headers"))
    post = _dict(req.get("postData"))
    body = post.get("text")
    body_head = body[:8192].encode("utf-8", "replace") if isinstance(body, str) else b""
    form_fields = post.get("params")
    if not body_head and isinstance(form_fields, list):
        body_head = "&".join(f"{p.get('name')}=" for p in form_fields if isinstance(p, dict)).encode()
    location = resp.get("redirectURL")
    host = url.split("/", 3)[2].split("@")[-1].split(":")[0].lower() if "://" in url else ""
    return might_be_auth(url, host, has_auth, body_head, location if isinstance(location, str) else "", ctx,
                         challenge)


def _clean_headers(headers: object) -> list[dict[str, str]]:
    """name/value string pairs, as mitmproxy's converter needs; anything else a tool wrote is dropped."""
    out = []
    for h in headers if isinstance(headers, list) else ():
        name, value = (h.get("name"), h.get("value")) if isinstance(h, dict) else \
            (h if isinstance(h, (list, tuple)) and len(h) == 2 else (None, None))
        if isinstance(name, str) and name and isinstance(value, (str, int, float)):
            out.append({"name": name, "value": str(value)})
    return out


def _header_dict(pairs: list[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in pairs:
        out.setdefault(h["name"].lower(), h["value"])
    return out


def _headers(headers: object) -> dict[str, str]:
    """Lower-case name -> first value. Fast path for the usual list of {"name": str, "value": str}
    objects; anything else goes the careful way (_clean_headers), with the same result."""
    if not isinstance(headers, list):
        return {}
    out: dict[str, str] = {}
    try:
        for h in reversed(headers):  # the first value wins
            value = h["value"]
            if value.__class__ is not str:
                raise TypeError
            name = h["name"]
            if name:
                out[name.lower()] = value
    except (TypeError, KeyError, AttributeError, IndexError):
        return _header_dict(_clean_headers(headers))
    return out


def _started(entry: dict[str, Any]) -> float:
    value = entry.get("startedDateTime")
    if not isinstance(value, str):
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _request_text(req: dict[str, Any]) -> str:
    """The request body as text: Chrome lists form fields under postData.params, others write text."""
    pd = req.get("postData")
    if not isinstance(pd, dict):
        return ""
    text = pd.get("text")
    if isinstance(text, str):
        return text[:MAX_BODY]
    fields = pd.get("params")
    params: list[Any] = fields if isinstance(fields, list) else []
    return urlencode([(str(p.get("name", "")), str(p.get("value", ""))) for p in params if isinstance(p, dict)])


def _response_text(content: Any, headers: dict[str, str]) -> str:
    """The answer's body as text (HAR bodies are already decoded; base64 ones are decoded here), only
    for text-like answers, capped like live capture's."""
    if not isinstance(content, dict) or not isinstance(content.get("text"), str):
        return ""
    if not is_text(headers.get("content-type", "").lower()):
        return ""
    text: str = content["text"]
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text[: MAX_BODY * 2], validate=False)[:MAX_BODY].decode("utf-8", "replace")
        except (ValueError, binascii.Error):
            return ""
    return text[:MAX_BODY]


def exchange_of(entry: dict[str, Any]) -> Exchange:
    """One HAR entry as the hop builder reads it, without building a mitmproxy flow (that costs 5-15x
    the parse, PERF.md). Browser exports differ: Chrome lists form fields under postData.params and
    writes status 0 for requests with no answer, Safari and Firefox omit fields or send nulls, other
    tools write wrongly typed fields; what cannot be read is dropped and the rest of the entry kept."""
    req = entry["request"]
    url = req["url"]
    if not isinstance(url, str) or "://" not in url:
        raise ValueError("no absolute URL")
    rh = _headers(req.get("headers"))
    host = (rh.get("host") or rh.get(":authority") or urlsplit(url).netloc).rpartition("@")[2]
    host = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    method = req.get("method")
    if not isinstance(method, str) or not method:
        raise ValueError("no method")
    started = _started(entry)
    elapsed = entry.get("time")
    ex = Exchange(method=method.upper(), url=url, host=host.lower(), started=started, request_headers=rh,
                  request_text=_request_text(req) if method.upper() not in ("GET", "HEAD") else "")
    answer = entry.get("response")
    resp: dict[str, Any] = answer if isinstance(answer, dict) else {}
    status = resp.get("status")
    if isinstance(status, str) and status.strip().isdigit():  # "302" from hand-made or converted HARs
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or status <= 0:
        ex.transport_error = str(resp.get("_error") or "no response recorded")  # Chrome: status 0
        return ex
    sh = _headers(resp.get("headers"))
    if "location" not in sh and isinstance(resp.get("redirectURL"), str) and resp["redirectURL"]:
        sh["location"] = resp["redirectURL"]
    ex.status = status
    ex.response_headers = sh
    ex.ended = started + elapsed / 1000 if isinstance(elapsed, (int, float)) and elapsed >= 0 else started
    ex.response_text = _response_text(resp.get("content"), sh)
    if "set-cookie" in sh:  # every one of them, not only the first
        ex.set_cookie_names = [h["value"].split(";", 1)[0].partition("=")[0].strip()
                               for h in _clean_headers(resp.get("headers")) if h["name"].lower() == "set-cookie"]
    return ex


def har_exchanges(entries: list[Any], problem: str | None, ctx: CaptureContext,
                  progress: Progress | None) -> Iterator[Any]:
    """Exchanges of the entries that may be auth hops; for runs of other entries, their count; None for
    an entry that cannot be read."""
    total = len(entries)
    passed = 0
    for i, entry in enumerate(entries):
        if progress and i % 2000 == 0:
            progress(i, total)
        if not isinstance(entry, dict) or not _entry_candidate(entry, ctx):
            passed += 1
            continue
        if passed:
            yield passed
            passed = 0
        try:
            yield exchange_of(entry)
        except (KeyError, TypeError, ValueError, AttributeError):
            yield None
    if passed:
        yield passed
    if progress:
        progress(total, total)
    if problem:
        raise CaptureError(problem)
