"""The bad-input corpus of issue 7 (item 1), generated into a directory: damaged and odd HAR and
.mitm files, and paths that are no capture at all. Every case says what `authtrace import` must do:
`bad` cases exit 2 with one sentence on stderr naming the file; every case keeps exactly `hops`
hops (or at least `hops` when `at_least`), `hops=None` meaning no session is created at all.

Expected counts come from the sign-in in `builders.signin_flows()` (7 flows, 6 hops: authorize,
login, callback, token, jwks, api; the 2nd flow is IdP page noise):
entry 0 authorize · 1 noise · 2 login POST · 3 form_post callback · 4 token · 5 JWKS · 6 API call.
"""
from __future__ import annotations

import base64
import copy
import gzip
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import brotli
import orjson
import zstandard
from mitmproxy import http
from mitmproxy.io import FlowWriter
from mitmproxy.test import tflow

from authtrace.addons.context import CaptureContext
from authtrace.addons.hops import flow_to_hops

from builders import API, IDP, TENANT, flow, signin_flows, to_har

SIGNIN_HOPS = 6
BIG = 50 * 1024 * 1024  # "a 50 MB body"
T0 = 1_780_000_000.0


@dataclass
class Case:
    name: str
    path: str
    bad: bool | None  # None: either (random damage may or may not be noticed)
    hops: int | None
    at_least: bool = False
    needle: str = ""  # words the one-sentence complaint must contain
    isolate: bool = False  # a regression would exhaust memory: only run in a memory-limited subprocess


def hops_of(flows) -> int:
    ctx = CaptureContext(b"\x05" * 32)
    return sum(len(flow_to_hops(f, ctx)) for f in flows if isinstance(f, http.HTTPFlow))


def mitm_bytes(flows) -> bytes:
    b = io.BytesIO()
    w = FlowWriter(b)
    for f in flows:
        w.add(f)
    return b.getvalue()


def malformed_jwts() -> dict[str, str]:
    def seg(obj) -> str:
        raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    hdr = seg({"alg": "RS256", "typ": "JWT"})
    return {
        "bad-base64": "eyJ!!notbase64!!.eyJ@@@.c2ln",
        "not-json": f"{seg(b'{not json')}.{seg(b'also not json')}.c2ln",
        "alg-none": f"{seg({'alg': 'none'})}.{seg({'sub': 'x', 'aud': 'y'})}.",
        "two-segments": f"{hdr}.{seg({'sub': 'x'})}",
        "four-segments": f"{hdr}.{seg({'sub': 'x'})}.c2ln.ZXh0cmE",
        "huge": f"{hdr}.{seg({'sub': 'x', 'pad': 'A' * 1_000_000})}.c2ln",
        "header-array": f"{seg([1, 2])}.{seg({'sub': 'x'})}.c2ln",
        "claims-array": f"{hdr}.{seg([1, 2, 3])}.c2ln",
        "claims-number": f"{hdr}.{seg(5)}.c2ln",
        "bad-utf8": seg(b'{"alg": "\xff\xfe"}') + "." + seg({"sub": "x"}) + ".c2ln",
        "kid-list": f"{seg({'alg': 'RS256', 'kid': ['a']})}.{seg({'sub': 'x'})}.c2ln",
        "crit-garbage": f"{seg({'alg': 'RS256', 'crit': 5})}.{seg({'sub': 'x'})}.c2ln",
        "empty-segments": "..",
        "deep-claims": f"{hdr}.{seg(json.loads('[' * 900 + ']' * 900))}.c2ln",
    }


def build(d: Path) -> list[Case]:
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    base = to_har(signin_flows(T0))
    base_bytes = orjson.dumps(base)

    def har(name: str, mutate=None, *, raw: bytes | None = None, bad=False, hops=SIGNIN_HOPS, at_least=False,
            needle="", isolate=False) -> None:
        p = d / f"{name}.har"
        if raw is None:
            h = copy.deepcopy(base)
            if mutate:
                mutate(h, h["log"]["entries"])
            raw = orjson.dumps(h)
        p.write_bytes(raw)
        cases.append(Case(name, str(p), bad, hops, at_least, needle, isolate))

    def mitm(name: str, flows=None, *, raw: bytes | None = None, bad=False, hops=None, at_least=False,
             needle="") -> None:
        p = d / f"{name}.mitm"
        p.write_bytes(raw if raw is not None else mitm_bytes(flows))
        cases.append(Case(name, str(p), bad, hops_of(flows) if hops is None else hops, at_least, needle))

    # -- HAR: damaged as a whole ---------------------------------------------------------------
    har("har-valid")
    har("har-utf8-bom", raw=b"\xef\xbb\xbf" + base_bytes)
    har("har-invalid-utf8", raw=base_bytes.replace(b"Sign in to your account", b"Sign in \xff\xfe\xc3( account"))
    indented = json.dumps(base, indent=1).encode()
    cut = indented.index(b"discovery/v2.0/keys")
    har("har-truncated", raw=indented[:cut], bad=True, hops=4, needle="truncated or damaged")
    har("har-truncated-at-start", raw=indented[:40], bad=True, hops=0, needle="truncated or damaged")
    har("har-invalid-json-midway", raw=indented[:cut] + b'"\x00}}]oops' + indented[cut:], bad=True, hops=4,
        needle="not valid JSON")
    har("har-not-json", raw=b"{ this is not JSON, only looks like it", bad=True, hops=0, needle="not valid JSON")
    har("har-json-not-har", raw=b'{"foo": 1}', bad=True, hops=None, needle="not a HAR")
    har("har-log-null", raw=b'{"log": null}', bad=True, hops=None, needle="not a HAR")
    har("har-entries-not-a-list", lambda h, e: h["log"].__setitem__("entries", {"0": e[0]}), bad=True, hops=None,
        needle="not a HAR")
    har("har-top-level-array", raw=b"[" + base_bytes + b"]", bad=True, hops=None, needle="not a capture")
    har("har-deep-nesting-truncated", raw=b'{"log": {"entries": [' + b"[" * 300_000, bad=True, hops=0,
        needle="truncated or damaged", isolate=True)  # salvaging it once took memory quadratic in the depth
    har("har-deep-nesting-valid", raw=b'{"log": {"entries": [' + b"[" * 5000 + b"]" * 5000 + b"]}}", bad=True,
        hops=0, needle="not valid JSON")

    # -- HAR: missing and wrongly typed fields (the rest of the entry, and every other entry, is kept) --
    har("har-junk-entries", lambda h, e: e.extend([None, 5, "x", [], {}, {"request": None}, {"request": {}}]))
    har("har-entry-without-request", lambda h, e: e[6].pop("request"), hops=5)
    har("har-request-not-an-object", lambda h, e: e[6].__setitem__("request", "GET /"), hops=5)
    har("har-url-not-a-string", lambda h, e: e[6]["request"].__setitem__("url", 42), hops=5)
    har("har-method-not-a-string", lambda h, e: e[6]["request"].__setitem__("method", ["POST"]), hops=5)
    har("har-headers-a-string", lambda h, e: e[0]["request"].__setitem__("headers", "user-agent: x"))
    har("har-headers-a-number", lambda h, e: e[0]["request"].__setitem__("headers", 7))
    har("har-headers-list-of-strings", lambda h, e: e[0]["request"].__setitem__("headers", ["accept: */*", 3]))
    har("har-header-value-a-number", lambda h, e: e[0]["request"]["headers"].extend(
        [{"name": "x-count", "value": 5}, {"name": "x-null", "value": None}, {"name": 5, "value": "x"}]))
    har("har-headers-as-pairs", lambda h, e: e[6]["request"].__setitem__(
        "headers", [[x["name"], x["value"]] for x in e[6]["request"]["headers"]]))
    har("har-status-a-string", lambda h, e: [x["response"].__setitem__("status", str(x["response"]["status"]))
                                             for x in e])
    har("har-status-garbage", lambda h, e: e[0]["response"].__setitem__("status", "OK"))
    har("har-postdata-params-only", lambda h, e: e[4]["request"].__setitem__("postData", {
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": k, "value": v} for k, v in
                   __import__("urllib.parse").parse.parse_qsl(e[4]["request"]["postData"]["text"])]}))
    har("har-postdata-without-text", lambda h, e: e[6]["request"].__setitem__("postData", {"mimeType": "x/y"}))
    har("har-postdata-a-string", lambda h, e: e[6]["request"].__setitem__("postData", "input=hi"))
    har("har-postdata-text-a-number", lambda h, e: e[6]["request"]["postData"].__setitem__("text", 12))
    har("har-postdata-params-a-number", lambda h, e: e[6]["request"].__setitem__("postData", {"params": 3}))
    har("har-no-responses", lambda h, e: [x.pop("response") for x in e], hops=5)  # the JWKS needs its answer
    har("har-responses-null", lambda h, e: [x.__setitem__("response", None) for x in e], hops=5)
    har("har-responses-strings", lambda h, e: [x.__setitem__("response", "200 OK") for x in e], hops=5)
    har("har-response-headers-a-string", lambda h, e: e[0]["response"].__setitem__("headers", "set-cookie: x"))
    har("har-response-content-a-string", lambda h, e: e[0]["response"].__setitem__("content", "<html>"))
    har("har-response-text-a-number", lambda h, e: e[0]["response"]["content"].__setitem__("text", 3.5))
    har("har-response-bad-base64", lambda h, e: e[0]["response"]["content"].update(encoding="base64", text="!!"))
    har("har-redirecturl-a-number", lambda h, e: e[0]["response"].__setitem__("redirectURL", 301))
    har("har-time-a-string", lambda h, e: [x.__setitem__("time", "fast") for x in e])

    # -- HAR: bodies --------------------------------------------------------------------------------
    rnd = random.Random(7)
    blob = bytes(rnd.randrange(256) for _ in range(65536))

    def binary(h, e):
        e[0]["response"]["content"] = {"mimeType": "application/octet-stream", "encoding": "base64",
                                       "text": base64.b64encode(blob).decode(), "size": len(blob)}
        e[6]["request"]["postData"] = {"mimeType": "application/octet-stream",
                                       "text": blob.decode("latin-1")}
    har("har-binary-bodies", binary)

    def lying(h, e):
        for i, enc in ((4, "gzip"), (5, "br"), (0, "zstd")):  # decoded text under a Content-Encoding header
            e[i]["response"]["headers"].append({"name": "Content-Encoding", "value": enc})
        e[4]["request"]["headers"].append({"name": "content-encoding", "value": "br"})
    har("har-lying-content-encoding", lying)

    def compressed(h, e):  # a tool that stored the bytes as sent: base64 of gzip/brotli/zstd
        for i, (enc, fn) in ((4, ("gzip", gzip.compress)), (5, ("br", brotli.compress)),
                             (0, ("zstd", zstandard.ZstdCompressor().compress))):
            c = e[i]["response"]["content"]
            c.update(encoding="base64", text=base64.b64encode(fn(c.get("text", "").encode())).decode())
            e[i]["response"]["headers"].append({"name": "content-encoding", "value": enc})
    har("har-compressed-bodies-as-sent", compressed, hops=5)  # the JWKS answer is unreadable as sent

    def big(h, e):
        page = "<html><title>Error</title>AADSTS50011: The redirect URI does not match. " + "x" * BIG + "</html>"
        e[0]["response"].update(status=400, content={"mimeType": "text/html", "text": page})
        noise = copy.deepcopy(e[1])
        noise["request"]["url"] = f"https://{API}/static/bundle.js"
        noise["response"]["content"] = {"mimeType": "application/javascript", "text": "/*" + "y" * BIG + "*/"}
        e.append(noise)
    har("har-50MB-bodies", big)

    def jwts(h, e):
        for name, tok in malformed_jwts().items():
            x = copy.deepcopy(e[6])
            x["request"]["url"] += f"&case={name}"
            x["request"]["headers"] = [hh for hh in x["request"]["headers"] if hh["name"].lower() != "authorization"]
            x["request"]["headers"].append({"name": "Authorization", "value": f"Bearer {tok}"})
            e.append(x)
        e[4]["response"]["content"]["text"] = json.dumps({
            "token_type": "Bearer", **{k: malformed_jwts()[v] for k, v in (
                ("access_token", "alg-none"), ("id_token", "not-json"), ("refresh_token", "huge"))}})
    har("har-malformed-jwts", jwts, hops=SIGNIN_HOPS + len(malformed_jwts()))

    def huge_headers(h, e):
        e[0]["request"]["headers"].append({"name": "x-huge", "value": "h" * (2 * 1024 * 1024)})
        e[0]["request"]["headers"].extend({"name": f"x-h{i}", "value": str(i)} for i in range(20000))
        e[3]["request"]["headers"].append({"name": "cookie", "value": "; ".join(f"c{i}=v{i}" for i in range(20000))})
    har("har-huge-headers", huge_headers)

    def h2(h, e):
        for x in e:
            r = x["request"]
            host = r["url"].split("/")[2]
            r["httpVersion"] = "h2"
            r["headers"] = [{"name": ":method", "value": r["method"]}, {"name": ":authority", "value": host},
                            {"name": ":scheme", "value": "https"}, {"name": ":path", "value": "/" +
                            r["url"].split("/", 3)[3]}] + r["headers"]
            x["response"]["httpVersion"] = "HTTP/2.0"
            x["response"]["headers"].insert(0, {"name": ":status", "value": str(x["response"]["status"])})
    har("har-http2-pseudo-headers", h2)

    # -- .mitm -----------------------------------------------------------------------------------
    flows = signin_flows(T0)
    mitm("mitm-valid", flows)

    ws = tflow.twebsocketflow()
    ws.request.headers["authorization"] = "Bearer ws-opaque-token-value"
    ws.websocket.messages[0].content = b"\x00\xff binary frame"
    other = [tflow.ttcpflow(), tflow.tudpflow(), tflow.tdnsflow(), tflow.twebsocketflow()]
    mitm("mitm-websocket-tcp-udp-dns", signin_flows(T0) + [ws] + other)

    data = mitm_bytes(signin_flows(T0))
    ends = []
    for i in range(1, 8):
        ends.append(len(mitm_bytes(signin_flows(T0)[:i])))
    mid = (ends[3] + ends[4]) // 2  # inside the 5th flow (token)
    mitm("mitm-corrupt-tail", signin_flows(T0)[:4], raw=data[:mid] + b"garbage\x00#tail", bad=True,
         needle="damaged")
    mitm("mitm-truncated", signin_flows(T0)[:4], raw=data[:mid], bad=True, needle="damaged")
    mitm("mitm-garbage-after-valid", signin_flows(T0), raw=data + b"99999:not really", bad=True, needle="damaged")
    for seed in range(12):  # a few bytes flipped anywhere: whatever is read, no traceback
        r = random.Random(seed)
        b = bytearray(data)
        for _ in range(r.randint(1, 4)):
            b[r.randrange(len(b))] = r.randrange(256)
        p = d / f"mitm-flipped-{seed}.mitm"
        p.write_bytes(bytes(b))
        cases.append(Case(f"mitm-flipped-{seed}", str(p), bad=None, hops=0, at_least=True, needle="damaged"))

    comp = signin_flows(T0)
    comp[4].request.encode("gzip")
    comp[4].response.encode("br")
    comp[5].response.encode("zstd")
    comp[0].response.encode("deflate")
    mitm("mitm-compressed-bodies", comp)

    lie = signin_flows(T0)
    lie[4].request.headers["content-encoding"] = "gzip"  # plain bytes under a lying header
    lie[4].response.headers["content-encoding"] = "br"
    lie[5].response.headers["content-encoding"] = "zstd"
    lie[0].response.raw_content = zstandard.ZstdCompressor().compress(lie[0].response.raw_content)
    lie[0].response.headers["content-encoding"] = "gzip"  # zstd bytes under a gzip header
    lie[6].response.headers["content-encoding"] = "x-unknown"
    mitm("mitm-lying-content-encoding", lie)

    bad_utf8 = signin_flows(T0)
    bad_utf8[0].request.headers[b"user-agent"] = b"Mozilla/5.0 \xff\xfe (broken)"
    bad_utf8[2].request.headers[b"cookie"] = b"ESTSAUTH=\xff\xfe\x00secret"
    bad_utf8[3].request.headers[b"referer"] = b"https://login.microsoftonline.com/\xff\xfe?x=\xc3("
    bad_utf8[6].request.path = bad_utf8[6].request.path + "&q=\udcff\udcfe"
    bad_utf8[4].response.raw_content = bad_utf8[4].response.raw_content.replace(b'"Bearer"', b'"Bea\xffrer"')
    mitm("mitm-invalid-utf8", bad_utf8, hops=SIGNIN_HOPS)

    big_flows = signin_flows(T0)
    big_flows[4].request.raw_content += b"&padding=" + b"p" * BIG
    big_flows[6].response.raw_content = b'{"id":"r1","pad":"' + b"z" * BIG + b'"}'
    mitm("mitm-50MB-bodies", big_flows)

    h2f = signin_flows(T0)
    for x in h2f:
        x.request.http_version = "HTTP/2.0"
        x.request.authority = x.request.host
        x.request.headers.insert(0, ":authority", x.request.host)
        x.request.headers.insert(0, ":method", x.request.method)
        x.response.http_version = "HTTP/2.0"
    mitm("mitm-http2", h2f)

    big_headers = signin_flows(T0)
    big_headers[0].request.headers["x-huge"] = "h" * (2 * 1024 * 1024)
    for i in range(5000):
        big_headers[6].request.headers.add(f"x-h{i}", str(i))
    mitm("mitm-huge-headers", big_headers)

    jwt_flows = signin_flows(T0)
    for name, tok in malformed_jwts().items():
        jwt_flows.append(flow("GET", f"https://{API}/api/things?case={name}", t=T0 + 9, browser=False,
                              headers={"authorization": f"Bearer {tok}"}, resp_headers={"content-type": "text/plain"},
                              resp_body=f"bad token {tok[:100]}"))
        jwt_flows.append(flow("GET", f"https://{IDP}/{TENANT}/oauth2/v2.0/logout?id_token_hint={tok}&case={name}",
                              t=T0 + 9, browser=True, status=302, resp_headers={"location": "/"}))
    mitm("mitm-malformed-jwts", jwt_flows, hops=SIGNIN_HOPS + 2 * len(malformed_jwts()))

    # hostile answers that some decoders do not survive yet (see test_hardening xfails): the flows
    # around them are kept; the hop of the hostile flow itself is expected once hops.py is fixed
    hostile = signin_flows(T0)
    hostile.insert(1, flow("GET", f"https://{IDP}/{TENANT}/oauth2/v2.0/authorize?client_id=c&response_type=code",
                           t=T0 + 0.5, status=302, resp_headers={"location": "http://[::1/cb?code=abc"}))
    hostile.append(flow("GET", f"https://{IDP}/common/discovery/keys", t=T0 + 8, browser=False,
                        resp_headers={"content-type": "application/json"},
                        resp_body='{"keys": ["not-a-key", {"kty": "oct", "k": "AAAA", "kid": ["x"]}]}'))
    mitm("mitm-hostile-answers", hostile, hops=SIGNIN_HOPS, at_least=True)

    # -- not captures at all -------------------------------------------------------------------
    (d / "empty.har").write_bytes(b"")
    cases.append(Case("empty-file", str(d / "empty.har"), True, None, needle="is empty"))
    (d / "a-directory.har").mkdir()
    cases.append(Case("directory", str(d / "a-directory.har"), True, None, needle="is a directory"))
    cases.append(Case("missing-path", str(d / "no-such-capture.har"), True, None, needle="no such file"))
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + blob[:1000])
    cases.append(Case("binary-file", str(d / "image.png"), True, None, needle="not a capture"))
    (d / "notes.txt").write_bytes(b"12:30 meeting notes about the sign-in\n")
    cases.append(Case("text-like-tnetstring", str(d / "notes.txt"), True, 0, needle="damaged"))
    (d / "zeros.mitm").write_bytes(b"\x00" * 4096)
    cases.append(Case("zeros", str(d / "zeros.mitm"), True, None, needle="not a capture"))
    return cases
