"""Offline capture files -> the same `flow_to_hops` as live capture.

HAR: parsed once with orjson; the cheap pre-filter runs on the plain entry dicts and only the
entries that may be auth hops become mitmproxy flows (mitmproxy's own `request_to_flow`). Building
a flow for every entry is what makes mitmproxy's HAR reader 5-15x slower than the parse (PERF.md).
A truncated HAR is read again with ijson, a streaming parser, to keep every entry before the damage.
.mitm: mitmproxy's FlowReader, streamed (flat memory); a corrupt tail keeps the flows before it.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import orjson
from mitmproxy import exceptions, http
from mitmproxy.io import FlowReader
from mitmproxy.io.har import request_to_flow

from authtrace.addons.hops import Context, flow_to_hops, might_be_auth
from authtrace.store import db


class CaptureError(Exception):
    """A capture file is unusable or damaged; the message is one sentence naming file and problem."""


@dataclass
class ImportResult:
    session_id: int
    path: str
    flows: int
    hops: int
    skipped: int  # entries that could not be turned into a flow
    problem: str | None  # set when the file was damaged: hops before the damage are kept


BATCH = 500


def import_file(engine, path: str, progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Import one file into a new capture session. Raises CaptureError before creating a session when
    the file is not a capture at all; a damaged capture keeps its good hops and reports `problem`."""
    kind = sniff(path)
    har = _har_entries(path) if kind == "har" else None
    ctx = Context(db.fingerprint_key(engine))
    sid = db.new_session(engine, os.path.basename(path), os.path.abspath(path), kind)
    flows = hops = skipped = 0
    batch: list[db.NewHop] = []
    problem = None

    def flush() -> None:
        nonlocal batch
        db.write_hops(engine, sid, batch)
        batch = []
        updates = ctx.take_signature_updates()
        if updates:
            db.set_signatures(engine, sid, updates)

    source = _har_flows(*har, ctx, progress) if har else _mitm_flows(path, progress)
    try:
        for item in source:
            if item is None:  # an entry that could not become a flow
                skipped += 1
                continue
            if isinstance(item, int):  # entries passed over by the pre-filter
                flows += item
                continue
            flows += 1
            try:
                new = flow_to_hops(item, ctx)
            except Exception:  # a decoder bug loses this flow only, never the rest of the file
                skipped += 1
                continue
            hops += len(new)
            batch.extend(new)
            if len(batch) >= BATCH:
                flush()
    except CaptureError as e:
        problem = str(e)
    finally:
        flush()
        db.update_session(engine, sid, flows_seen=flows, problem=problem)
    return ImportResult(sid, path, flows, hops, skipped, problem)


def sniff(path: str) -> str:
    if not os.path.exists(path):
        raise CaptureError(f"{path}: no such file.")
    if os.path.isdir(path):
        raise CaptureError(f"{path} is a directory, not a capture file (give a .har or .mitm file).")
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as e:
        raise CaptureError(f"{path}: cannot be read ({e.strerror}).") from e
    if not head:
        raise CaptureError(f"{path} is empty: not a HAR or mitmproxy flow file.")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return "har"
    if head[:1].isdigit() and b":" in head[:12]:  # tnetstring: "<len>:<data>"
        return "mitm"
    raise CaptureError(f"{path} is not a capture: expected a HAR (JSON) or a mitmproxy flow file.")


# ---- HAR ------------------------------------------------------------------------------------

def _har_entries(path: str) -> tuple[list, str | None]:
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


def _har_entries_salvage(path: str, data: bytes) -> list:
    import io

    import ijson

    out: list = []
    try:
        for entry in ijson.items(io.BytesIO(data), "log.entries.item", use_float=True):
            out.append(entry)
    except Exception:  # the damage: everything before it is kept
        pass
    return out


def _get(d: object, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict):
            return default
        d = d.get(k)
    return d if d is not None else default


def _entry_candidate(entry: dict, ctx: Context) -> bool:
    req = entry.get("request")
    if not isinstance(req, dict):
        return False
    url = req.get("url")
    if not isinstance(url, str):
        return False
    has_auth = False
    headers = req.get("headers")
    for h in headers if isinstance(headers, list) else ():
        name = h.get("name") if isinstance(h, dict) else (h[0] if isinstance(h, (list, tuple)) and h else "")
        if isinstance(name, str) and len(name) == 13 and name.lower() == "authorization":  # len: cheap first
            has_auth = True
            break
    body = _get(req, "postData", "text", default="")
    body_head = body[:8192].encode("utf-8", "replace") if isinstance(body, str) else b""
    if not body_head and isinstance(_get(req, "postData", "params"), list):
        body_head = "&".join(f"{p.get('name')}=" for p in req["postData"]["params"] if isinstance(p, dict)).encode()
    location = _get(entry, "response", "redirectURL", default="") or ""
    host = url.split("/", 3)[2].split("@")[-1].split(":")[0].lower() if "://" in url else ""
    return might_be_auth(url, host, has_auth, body_head, location if isinstance(location, str) else "", ctx)


def _clean_headers(headers: object) -> list[dict]:
    """name/value string pairs, as mitmproxy's converter needs; anything else a tool wrote is dropped."""
    out = []
    for h in headers if isinstance(headers, list) else ():
        name, value = (h.get("name"), h.get("value")) if isinstance(h, dict) else \
            (h if isinstance(h, (list, tuple)) and len(h) == 2 else (None, None))
        if isinstance(name, str) and name and isinstance(value, (str, int, float)):
            out.append({"name": name, "value": str(value)})
    return out


def _entry_to_flow(entry: dict) -> http.HTTPFlow:
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
        params = pd.get("params") if isinstance(pd.get("params"), list) else []
        from urllib.parse import urlencode

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
    content = resp.get("content") if isinstance(resp.get("content"), dict) else {}
    content = {k: v for k, v in content.items() if k != "text" or isinstance(v, str)}
    resp = {"status": 200 if failed else status, "httpVersion": resp.get("httpVersion") or "HTTP/1.1",
            "headers": headers, "content": content}
    e = {"startedDateTime": entry.get("startedDateTime") or "1970-01-01T00:00:00Z",
         "time": entry.get("time") if isinstance(entry.get("time"), (int, float)) and entry["time"] >= 0 else 0,
         "request": req, "response": resp}
    flow = request_to_flow(e)
    if failed:
        flow.response = None
        err = _get(entry, "response", "_error") or "no response recorded"
        from mitmproxy.flow import Error

        flow.error = Error(str(err))
    return flow


def _har_flows(entries: list, problem: str | None, ctx: Context, progress) -> Iterator:
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


# ---- mitmproxy flow files -------------------------------------------------------------------

def _mitm_flows(path: str, progress) -> Iterator:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        reader = FlowReader(fh)
        n = 0
        try:
            for f in reader.stream():
                n += 1
                if progress and n % 1000 == 0:
                    progress(fh.tell(), size)
                if isinstance(f, http.HTTPFlow):
                    yield f
                else:
                    yield 1  # tcp/udp/dns flows: counted, not hops
        except exceptions.FlowReadException as e:
            raise CaptureError(f"{path} is damaged after {n} flow(s) ({e}); kept the flows before it.") from e
        except Exception as e:  # damage that parses but does not make a flow: KeyError, UnicodeError, ...
            raise CaptureError(f"{path} is damaged after {n} flow(s) (unreadable flow: {type(e).__name__}); "
                               f"kept the flows before it.") from e
        if progress:
            progress(size, size)
