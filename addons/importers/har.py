"""HAR files (Chrome, Edge, Firefox, Safari exports) -> flows for the hop builder.

Parsed once with orjson; the cheap pre-filter runs on the plain entry dicts and only the entries
that may be auth hops become mitmproxy flows (mitmproxy's own `request_to_flow`). Building a flow
for every entry is what makes mitmproxy's HAR reader 5-15x slower than the parse (PERF.md). A
truncated HAR is read again with ijson, a streaming parser, to keep every entry before the damage.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import ijson
import orjson
from mitmproxy import exceptions, http
from mitmproxy.flow import Error
from mitmproxy.io.har import request_to_flow

from authtrace.addons.context import CaptureContext
from authtrace.addons.importers.sniff import CaptureError, Progress
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


def _entry_candidate(entry: dict[str, Any], ctx: CaptureContext) -> bool:
    req = entry.get("request")
    if not isinstance(req, dict):
        return False
    url = req.get("url")
    if not isinstance(url, str):
        return False
    has_auth = asks_auth = False
    headers = req.get("headers")
    for h in headers if isinstance(headers, list) else ():
        name = h.get("name") if isinstance(h, dict) else (h[0] if isinstance(h, (list, tuple)) and h else "")
        if isinstance(name, str) and len(name) == 13 and name.lower() == "authorization":  # len: cheap first
            has_auth = True
            break
        if isinstance(name, str) and len(name) == 30 and name.lower() == "access-control-request-headers":
            value = h.get("value") if isinstance(h, dict) else None
            asks_auth = isinstance(value, str) and "authorization" in value.lower()
    challenge = False
    rh = _get(entry, "response", "headers")
    for h in rh if isinstance(rh, list) else ():
        name = h.get("name") if isinstance(h, dict) else None
        if isinstance(name, str) and len(name) == 16 and name.lower() == "www-authenticate":
            challenge = True
            break
    body = _get(req, "postData", "text", default="")
    body_head = body[:8192].encode("utf-8", "replace") if isinstance(body, str) else b""
    form_fields = _get(req, "postData", "params")
    if not body_head and isinstance(form_fields, list):
        body_head = "&".join(f"{p.get('name')}=" for p in form_fields if isinstance(p, dict)).encode()
    location = _get(entry, "response", "redirectURL", default="") or ""
    host = url.split("/", 3)[2].split("@")[-1].split(":")[0].lower() if "://" in url else ""
    return might_be_auth(url, host, has_auth, body_head, location if isinstance(location, str) else "", ctx,
                         challenge, asks_auth)


def _clean_headers(headers: object) -> list[dict[str, str]]:
    """name/value string pairs, as mitmproxy's converter needs; anything else a tool wrote is dropped."""
    out = []
    for h in headers if isinstance(headers, list) else ():
        name, value = (h.get("name"), h.get("value")) if isinstance(h, dict) else \
            (h if isinstance(h, (list, tuple)) and len(h) == 2 else (None, None))
        if isinstance(name, str) and name and isinstance(value, (str, int, float)):
            out.append({"name": name, "value": str(value)})
    return out


def _entry_to_flow(entry: dict[str, Any]) -> http.HTTPFlow:
    """mitmproxy's converter, after making the entry complete enough for it. Browser exports differ:
    Chrome lists form fields under postData.params, Safari and Firefox omit fields or send nulls;
    other tools write wrongly typed fields, which are dropped so that the rest of the entry is kept."""
    req = dict(entry["request"])
    req["headers"] = _clean_headers(req.get("headers"))
    resp = dict(entry["response"]) if isinstance(entry.get("response"), dict) else {}
    pd = req.get("postData")
    if pd is not None and not isinstance(pd, dict):
        del req["postData"]
    elif isinstance(pd, dict) and not isinstance(pd.get("text"), str):
        fields = pd.get("params")
        params = fields if isinstance(fields, list) else []
        req["postData"] = dict(pd, text=urlencode([(p.get("name", ""), p.get("value", "")) for p in params
                                                   if isinstance(p, dict)]))
    req.setdefault("httpVersion", "HTTP/1.1")
    # the body is already decoded text: drop Content-Encoding so mitmproxy does not re-compress it
    headers = [h for h in _clean_headers(resp.get("headers")) if h["name"].lower() != "content-encoding"]
    has_location = any(h["name"].lower() == "location" for h in headers)
    if not has_location and isinstance(resp.get("redirectURL"), str) and resp["redirectURL"]:
        headers.append({"name": "location", "value": resp["redirectURL"]})
    status = resp.get("status")
    if isinstance(status, str) and status.strip().isdigit():  # "302" from hand-made or converted HARs
        status = int(status)
    failed = not isinstance(status, int) or status <= 0  # Chrome writes status 0 for requests with no answer
    raw_content = resp.get("content")
    content = {k: v for k, v in raw_content.items() if k != "text" or isinstance(v, str)} \
        if isinstance(raw_content, dict) else {}
    resp = {"status": 200 if failed else status, "httpVersion": resp.get("httpVersion") or "HTTP/1.1",
            "headers": headers, "content": content}
    e = {"startedDateTime": entry.get("startedDateTime") or "1970-01-01T00:00:00Z",
         "time": entry.get("time") if isinstance(entry.get("time"), (int, float)) and entry["time"] >= 0 else 0,
         "request": req, "response": resp}
    flow = request_to_flow(e)
    if failed:
        flow.response = None
        err = _get(entry, "response", "_error") or "no response recorded"
        flow.error = Error(str(err))
    return flow


def har_flows(entries: list[Any], problem: str | None, ctx: CaptureContext,
              progress: Progress | None) -> Iterator[Any]:
    """Flows of the entries that may be auth hops; for runs of other entries, their count; None for an
    entry that cannot become a flow."""
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
            yield _entry_to_flow(entry)
        except (KeyError, TypeError, ValueError, AttributeError, exceptions.MitmproxyException):
            yield None
    if passed:
        yield passed
    if progress:
        progress(total, total)
    if problem:
        raise CaptureError(problem)
