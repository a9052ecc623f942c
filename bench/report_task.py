"""The report benchmark: a 10,000-hop session -> findings -> HTML.

    python bench/report_task.py build DB [--hops 10000]   # the session (≈1/6 sign-ins, the rest bearer API calls)
    python bench/report_task.py measure DB OUT.html [--profile FILE]

`build` makes complete sign-ins with tests/builders.py (authorize, login, form_post callback, token,
JWKS, API call), adds bearer API calls after each (4 per sign-in), and every 50th sign-in redeems
its code twice (the IdP answers AADSTS54005), so the report has findings to show. Hops go through
the same `flow_to_hops` and `write_hops` as an import.
`measure` times, in one fresh process: loading the session, `run_checks`, `render_html` and
`write_report` (leak scan + write), and prints sizes. Rendering is skipped (and said so) when
reports/render.py cannot be imported.
"""
from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def build(db_path: str, target: int) -> dict:
    from authtrace.addons.context import CaptureContext
    from authtrace.addons.hops import flow_to_hops
    from authtrace.store import db

    import builders
    from builders import API, flow

    engine = db.open_db(db_path)
    sid = db.new_session(engine, "bench 10k hops", "bench", "har")
    ctx = CaptureContext(db.fingerprint_key(engine))
    batch, hops, flows, i = [], 0, 0, 0
    t0 = 1_795_000_000.0
    while hops < target:
        t = t0 + i * 30
        secrets: dict = {}
        fl = builders.signin_flows(t, code=f"0.AXoA-code-{i:06d}-" + "c" * 30, state=f"state-{i:06d}",
                                   nonce=f"nonce-{i}", secrets=secrets)
        if i % 50 == 49:  # the code redeemed twice: the second answer is AADSTS54005
            token_flow = fl[4]
            again = flow("POST", token_flow.request.pretty_url, t=t + 4.3, browser=False,
                         headers={"content-type": "application/x-www-form-urlencoded"},
                         body=token_flow.request.content, status=400,
                         resp_headers={"content-type": "application/json"},
                         resp_body=json.dumps({"error": "invalid_grant", "error_description":
                                               "AADSTS54005: OAuth2 Authorization code was already redeemed, "
                                               "please retry with a new valid code or use an existing refresh token.",
                                               "error_codes": [54005]}))
            fl.insert(5, again)
        for k in range(4):
            fl.append(flow("GET", f"https://{API}/api/projects/p1/threads?limit=20&page={k}", t=t + 6 + k,
                           browser=False, headers={"authorization": f"Bearer {secrets['access_token']}",
                                                   "accept": "application/json"},
                           resp_headers={"content-type": "application/json"}, resp_body='{"data":[]}'))
        for f in fl:
            flows += 1
            new = flow_to_hops(f, ctx)
            hops += len(new)
            batch.extend(new)
        if len(batch) >= 500:
            db.write_hops(engine, sid, batch)
            batch = []
        i += 1
    db.write_hops(engine, sid, batch)
    updates = ctx.signatures.take_updates()
    if updates:
        db.set_signatures(engine, sid, updates)
    db.update_session(engine, sid, flows_seen=flows)
    engine.dispose()
    return {"session": sid, "hops": hops, "flows": flows, "signins": i}


def measure(db_path: str, out: str, profile: str | None) -> dict:
    from authtrace.reports import html as render
    from authtrace.reports.checks import run_checks
    from authtrace.reports.diagnose import assemble
    from authtrace.store import db

    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    engine = db.open_db(db_path)
    t = time.perf_counter()
    session = db.load_session(engine)
    hops = db.load_hops(engine, session.id)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    findings, _ = run_checks(hops)
    t_checks = time.perf_counter() - t
    res = {"hops": len(hops), "tokens": sum(len(h.tokens) for h in hops), "findings": len(findings),
           "load_s": round(t_load, 3), "checks_s": round(t_checks, 3)}
    t = time.perf_counter()
    a = assemble(session, hops, findings)
    html = render.render_html(a)
    res["render_s"] = round(time.perf_counter() - t, 3)
    res["html_mb"] = round(len(html.encode()) / 1e6, 2)
    t = time.perf_counter()
    try:
        render.write_report(html, out)
        res["write_report_s"] = round(time.perf_counter() - t, 3)
    except render.LeakError as e:  # a leak found by the scan is a finding of its own
        res["write_report"] = f"{type(e).__name__}: {str(e)[:200]}"
        res["write_report_s"] = round(time.perf_counter() - t, 3)
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    engine.dispose()
    return res


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "build":
        n = int(sys.argv[sys.argv.index("--hops") + 1]) if "--hops" in sys.argv else 10000
        print(json.dumps(build(sys.argv[2], n)))
    elif cmd == "measure":
        p = sys.argv[sys.argv.index("--profile") + 1] if "--profile" in sys.argv else None
        print(json.dumps(measure(sys.argv[2], sys.argv[3], p)))
    else:
        raise SystemExit(__doc__)
