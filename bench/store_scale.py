"""A shared store at scale (issue 14): 1,000 sessions and 1,000,000 hops in SQLite and PostgreSQL.
One command, on a quiet machine:

    .venv/bin/python bench/store_scale.py                       # both backends, full size (≈ 25–40 min)
    .venv/bin/python bench/store_scale.py --sessions 50         # a quick look (50,000 hops)
    .venv/bin/python bench/store_scale.py --backends sqlite --keep
    .venv/bin/python bench/store_scale.py --pg-url postgresql://user@host/db   # an existing, empty database

Builds the store through the real write path (`db.write_hops`, which also writes the search index)
with 4 writer processes, then measures, as medians of repeated warm runs in one process:
listing sessions as `authtrace sessions` does (the newest 200, and all), each filter, `find` for a
code seen in two captures, for a token used on ~95 API calls and for an unknown fingerprint,
reporting one 1,000-hop session (load, checks, HTML), and the CLI's wall time for `sessions` and
`find` (Python start-up included). Then the import rate: 1 and 4 concurrent `authtrace import`
processes of a generated auth-heavy HAR into the store. Never asserts: prints a table and writes
bench/store_scale.json. PostgreSQL runs from Debian's binaries in a temporary folder
(tests/pgserver.py) with durable settings (fsync on), unless --pg-url is given.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
AUTHTRACE = os.path.join(os.path.dirname(sys.executable), "authtrace")
DAY = 86400.0
NOW = time.time()
KINDS = ("reused_code", "redirect_uri_mismatch", "audience_mismatch", "token_expired", "idp_error")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fp(label: str, *parts: Any) -> str:
    return f"{label}#" + hashlib.blake2b(repr((label, *parts)).encode(), digest_size=5).hexdigest()


# ---- the synthetic store --------------------------------------------------------------------------

def session_hops(i: int, n: int) -> list[Any]:
    """Session i: sign-ins (authorize, login, callback, token, JWKS) every 100 hops, the rest API calls
    with the latest access token. Session i shares its first code with session i-1 when i % 100 == 2."""
    from authtrace.store.records import Actor, Answer, Hop, Params, Role, Token

    tenant = f"{i % 50:08x}-aaaa-bbbb-cccc-0000000000{i % 50:02d}"
    client = f"client-{i % 200:04d}"
    app = f"app{i % 100}.contoso.test"
    api = f"proj{i % 30}.services.ai.azure.com"
    idp = "login.microsoftonline.com"
    t = NOW - (i % 60) * DAY - 3600
    hops: list[Hop] = []
    access = None
    cookies = {"ESTSAUTH": fp("cookie", i, "ests"), "buid": fp("cookie", i, "buid")}
    for k in range(n):
        t += 0.25
        phase = k % 100
        if phase < 5:
            j = k // 100
            code = fp("code", i - 1 if (i % 100 == 2 and j == 0) else i, j)
            state = f"state-{i}-{j}"
            if phase == 0:
                hops.append(Hop(started=t, role=Role.AUTHORIZE, method="GET", host=idp,
                                path=f"/{tenant}/oauth2/v2.0/authorize", status=302, client_id=client, state=state,
                                url=f"https://{idp}/{tenant}/oauth2/v2.0/authorize?client_id={client}&state={state}",
                                params=Params(query={"client_id": client, "state": state, "scope": "openid profile",
                                                     "redirect_uri": f"https://{app}/signin-oidc"}),
                                answer=Answer(location=f"https://{app}/signin-oidc?code={code}", issued_code=code),
                                code_fp=code, cookies_sent=cookies, user_agent="Mozilla/5.0"))
            elif phase == 1:
                hops.append(Hop(started=t, role=Role.LOGIN, method="POST", host=idp, path=f"/{tenant}/login",
                                url=f"https://{idp}/{tenant}/login", status=200, cookies_sent=cookies,
                                params=Params(form={"login": "user@contoso.test", "flowtoken": fp("flowtoken", i, j)})))
            elif phase == 2:
                hops.append(Hop(started=t, role=Role.CALLBACK, method="GET", host=app, path="/signin-oidc",
                                url=f"https://{app}/signin-oidc?code={code}&state={state}", status=302, code_fp=code,
                                state=state, params=Params(query={"code": code, "state": state})))
            elif phase == 3:
                access = fp("access_token", i, j)
                claims = {"aud": "https://ai.azure.com", "iss": f"https://sts.windows.net/{tenant}/", "tid": tenant,
                          "exp": t + 3600, "iat": t, "nbf": t, "scp": "user_impersonation", "appid": client}
                bad = (i + j) % 7 == 0
                hops.append(Hop(started=t, role=Role.TOKEN, method="POST", host=idp,
                                path=f"/{tenant}/oauth2/v2.0/token", url=f"https://{idp}/{tenant}/oauth2/v2.0/token",
                                status=400 if bad else 200, is_error=bad, actor=Actor.APP, client_id=client,
                                code_fp=code, params=Params(form={"code": code, "grant_type": "authorization_code",
                                                                  "client_id": client}),
                                answer=Answer(fields={"token_type": "Bearer", "expires_in": 3599,
                                                      "access_token": access}),
                                tokens=[Token(where="response.access_token", kind="access_token", fingerprint=access,
                                              format="jwt", header={"alg": "RS256", "kid": "k1"}, claims=claims)]))
            else:
                hops.append(Hop(started=t, role=Role.JWKS, method="GET", host=idp,
                                path=f"/{tenant}/discovery/v2.0/keys", status=200, actor=Actor.APP,
                                url=f"https://{idp}/{tenant}/discovery/v2.0/keys", answer=Answer(kids=("k1", "k2"))))
        else:
            assert access is not None
            hops.append(Hop(started=t, role=Role.API, method="POST", host=api,
                            path="/api/projects/p/openai/responses", status=200, actor=Actor.API_CLIENT,
                            url=f"https://{api}/api/projects/p/openai/responses?api-version=2025-05-01",
                            duration_ms=120.0, request_headers={"content-type": "application/json"},
                            tokens=[Token(where="request.authorization", kind="access_token", fingerprint=access,
                                          format="jwt", header={"alg": "RS256", "kid": "k1"},
                                          claims={"aud": "https://ai.azure.com", "tid": tenant})]))
    return hops


def findings_of(i: int) -> list[Any]:
    from authtrace.store.records import Finding, Severity

    return [Finding(kind=KINDS[(i + k) % len(KINDS)], severity=Severity.ERROR if k == 0 else Severity.WARNING,
                    title=f"Finding {k} of session {i}.", explanation="-", causes=(), next_step="-", evidence=())
            for k in range(1 + i % 3)]


def _writer(args: tuple[str, list[int], int]) -> tuple[int, float]:
    from authtrace.store import db

    url, ids, n = args
    engine = db.open_db(url)
    hops_written, t0 = 0, time.perf_counter()
    for i in ids:
        sid = db.new_session(engine, f"customer-{i}.har", f"/captures/customer-{i}.har", "har")
        hops = session_hops(i, n)
        for k in range(0, len(hops), 500):  # the importers' batch
            db.write_hops(engine, sid, hops[k:k + 500])
        db.update_session(engine, sid, flows_seen=n * 3)
        db.replace_findings(engine, sid, findings_of(i))
        hops_written += len(hops)
    engine.dispose()
    return hops_written, time.perf_counter() - t0


def build(url: str, sessions: int, hops: int, writers: int) -> dict[str, Any]:
    from authtrace.store import db

    db.open_db(url).dispose()
    shares = [(url, list(range(1 + w, sessions + 1, writers)), hops) for w in range(writers)]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        done = pool.map(_writer, shares)
    wall = time.perf_counter() - t0
    total = sum(n for n, _ in done)
    return {"hops": total, "wall_s": round(wall, 1), "hops_per_s": round(total / wall)}


# ---- measurements ---------------------------------------------------------------------------------

def median_ms(fn: Callable[[], Any], runs: int = 7) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


def measure(url: str, sessions: int) -> dict[str, Any]:
    from authtrace.reports.diagnose import analyse
    from authtrace.reports.html import render_html
    from authtrace.store import db, search
    from authtrace.store.search import SessionFilter

    engine = db.open_db(url)

    def listing(flt: SessionFilter, limit: int | None = 200) -> Callable[[], int]:
        def run() -> int:  # what `authtrace sessions` does before printing
            rows = db.sessions(engine, flt, limit=limit)
            ids = [s.id for s in rows if s.id is not None]
            db.role_counts(engine, ids)
            db.finding_counts(engine, ids)
            if limit and len(rows) == limit:
                db.count_sessions(engine, flt)
            return len(rows)
        return run

    out: dict[str, Any] = {}
    cases = {
        "sessions (newest 200, counts)": (SessionFilter(), 200),
        "sessions --limit 0 (all, counts)": (SessionFilter(), None),
        "filter host (exact)": (SessionFilter(host="proj7.services.ai.azure.com"), 200),
        "filter host (*.ai.azure.com)": (SessionFilter(host="*.ai.azure.com"), 200),
        "filter client_id": (SessionFilter(client_id="client-0042"), 200),
        "filter tenant": (SessionFilter(tenant=f"{7:08x}-aaaa-bbbb-cccc-000000000007"), 200),
        "filter finding kind": (SessionFilter(finding="reused_code"), 200),
        "filter since 7d": (SessionFilter(since=NOW - 7 * DAY), 200),
        "filter free text": (SessionFilter(text="customer-77"), 200),
        "filter host + finding + since": (SessionFilter(host="*.ai.azure.com", finding="idp_error",
                                                        since=NOW - 30 * DAY), 200),
    }
    for name, (flt, limit) in cases.items():
        n = listing(flt, limit)()
        out[name] = {"ms": median_ms(listing(flt, limit)), "rows": n}
    code = search.digest_of(fp("code", 1, 0))
    token = search.digest_of(fp("access_token", min(sessions, 500), 0))
    for name, digest in (("find a code (2 captures)", code), ("find a token (~95 API calls)", token),
                         ("find an unknown fingerprint", "0000000000")):
        assert digest is not None
        n = len(search.find(engine, digest))
        out[name] = {"ms": median_ms(lambda d=digest: search.find(engine, d)), "rows": n}
    session = db.load_session(engine, min(sessions, 500))
    assert session is not None and session.id is not None
    sid = session.id
    out["report one session: load hops"] = {"ms": median_ms(lambda: db.load_hops(engine, sid), 5)}
    out["report one session: analyse"] = {"ms": median_ms(lambda: analyse(engine, session, keep=False), 5)}
    a = analyse(engine, session, keep=False)
    out["report one session: render HTML"] = {"ms": median_ms(lambda: render_html(a), 5), "hops": len(a.hops)}
    out["size"] = _size(engine, url)
    engine.dispose()
    return out


def _size(engine: Any, url: str) -> str:
    from sqlalchemy import text

    if url.startswith("postgresql"):
        with engine.connect() as conn:
            n = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    else:
        n = sum(os.path.getsize(p) for p in (url, url + "-wal") if os.path.exists(p))
    return f"{n / 1e9:.2f} GB"


def cli_ms(url: str, *args: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([AUTHTRACE, *args, "--db", url], capture_output=True, check=True, timeout=300)
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times))


def import_rate(url: str, tmp: str) -> dict[str, Any]:
    """`authtrace import` of an auth-heavy HAR: one process alone, then four at once."""
    sys.path.insert(0, HERE)
    from gen_capture import generate

    stem = os.path.join(tmp, "auth-heavy")
    generate(stem, 4000, "auth-heavy")
    har = stem + ".har"
    out: dict[str, Any] = {}
    for writers in (1, 4):
        t = time.perf_counter()
        procs = [subprocess.Popen([AUTHTRACE, "import", har, "--db", url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(writers)]
        texts = [p.communicate(timeout=1800) for p in procs]
        wall = time.perf_counter() - t
        hops = sum(int(o.split(" auth hops")[0].rsplit(" ", 1)[1]) for o, _ in texts)
        out[f"{writers} writer(s)"] = {"hops": hops, "wall_s": round(wall, 1), "hops_per_s": round(hops / wall)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--hops", type=int, default=1000, help="hops per session")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg-url", help="an existing, empty PostgreSQL database instead of a temporary server")
    ap.add_argument("--keep", action="store_true", help="keep the SQLite store and print where it is")
    ap.add_argument("--skip-import", action="store_true", help="leave out the import-rate runs")
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "load_before": os.getloadavg()},
                               "sessions": args.sessions, "hops_per_session": args.hops}
    tmp = tempfile.mkdtemp(prefix="authtrace-scale-")
    pg = None
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = os.path.join(tmp, "scale.db")
            else:
                if args.pg_url:
                    url = args.pg_url
                else:
                    from pgserver import PgServer

                    pg = PgServer(durable=True).start()
                    url = pg.database("scale")
            log(f"{backend}: building {args.sessions} sessions x {args.hops} hops with {args.writers} writers")
            r: dict[str, Any] = {"build": build(url, args.sessions, args.hops, args.writers)}
            log(f"{backend}: built {r['build']}; measuring")
            r.update(measure(url, args.sessions))
            r["cli: authtrace sessions (wall, start-up included)"] = {"ms": cli_ms(url, "sessions")}
            r["cli: authtrace find CODE (wall, start-up included)"] = {
                "ms": cli_ms(url, "find", fp("code", 1, 0))}
            if not args.skip_import:
                log(f"{backend}: import rate")
                r["import"] = import_rate(url, tmp)
            results[backend] = r
            if pg is not None:
                pg.stop()
                pg = None
    finally:
        if pg is not None:
            pg.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    with open(os.path.join(HERE, "store_scale.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    backends = [b for b in args.backends.split(",") if b in results]
    print(f"\n{args.sessions} sessions x {args.hops} hops; load {results['machine']['load_before'][0]:.1f} -> "
          f"{results['machine']['load_after'][0]:.1f} on {os.cpu_count()} cores")
    print(f"{'measure':<52}" + "".join(f"{b:>24}" for b in backends))
    for key in results[backends[0]]:
        cells = []
        for b in backends:
            v = results[b][key]
            if isinstance(v, dict) and "ms" in v:
                cells.append(f"{v['ms']} ms" + (f" ({v['rows']} rows)" if "rows" in v else ""))
            elif key == "build":
                cells.append(f"{v['hops_per_s']} hops/s ({v['wall_s']} s)")
            elif key == "import":
                cells.append(" / ".join(f"{x['hops_per_s']}" for x in v.values()) + " hops/s (1 / 4 w)")
            else:
                cells.append(str(v))
        print(f"{key:<52}" + "".join(f"{c:>24}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
