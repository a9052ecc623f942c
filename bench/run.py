"""authtrace performance benchmarks (issue 6): live proxy, import, report. One command:

    .venv/bin/python bench/run.py [--quick] [--only live,cost,import,report] [--fresh] [--keep]

Prints a table of figures, baselines, ratios and budgets, and writes bench/results.json.
Never asserts timings: it measures and says which budget is met or missed by how much.

live    a loopback origin (upstream.py) loaded by 16 keep-alive clients (loadgen.py) through bare
        `mitmdump -q` and through `mitmdump -q -s cli/addon.py` (live findings off) (regular proxy mode: the client
        sends absolute-form requests to the proxy), (a) ordinary page traffic, (b) auth-heavy traffic;
        bare/addon runs alternate, ratios are medians of the per-round ratios. The direct-to-origin
        rate is measured too, to show the load generator is not the bottleneck.
cost    the addon's own cost per flow, in-process, on the same traffic (addon_cost.py): much less
        noisy than the live runs on a shared machine.
import  a 20,000-entry HAR (~70 MB) "realistic" (a few sign-ins) and "auth-heavy" (half the entries
        carry tokens), and the same captures as .mitm (gen_capture.py): `import_file` into a fresh
        SQLite file vs `orjson.loads` of the HAR and mitmproxy's FlowReader; peak RSS per run; .mitm
        import memory at 5k vs 20k entries; the CLI once.
report  a 10,000-hop session: load, run_checks, render_html (when reports/render.py imports) and
        write_report; checks also at 1k and 2k hops to show how they scale.

Generated inputs live in a cache under the system temp dir (never in the repo), keyed by the hash
of the generators; --fresh rebuilds them. Scratch files go to a temp dir removed at the end
unless --keep.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable
BIN = os.path.dirname(PY)
MITMDUMP = os.path.join(BIN, "mitmdump")
AUTHTRACE = os.path.join(BIN, "authtrace")

BUDGETS = {
    "live_ordinary": 0.97, "live_auth": 0.90, "import_realistic": 1.5, "import_auth": 3.0, "report_s": 0.7,
    "import_mitm": 1.6,  # a .mitm file against mitmproxy's own FlowReader over it
    # flat: the extra peak memory of a 20k-entry .mitm import over a 5k one is under 10% of the extra
    # file size (holding the flows would need more than 100%)
    "mitm_flat": 0.10,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pinned(cpus: set[int] | None):
    """A preexec_fn that pins the child (and what it starts) to `cpus`; None leaves it to the scheduler."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def run_json(cmd: list[str], timeout: float | None = None, cwd: str = ROOT, cpus: set[int] | None = None) -> dict:
    """Run a bench worker; its last stdout line is a JSON object."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, preexec_fn=pinned(cpus))
    except subprocess.TimeoutExpired:
        return {"timeout_s": timeout}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-800:]}"}
    return json.loads(lines[-1])


def timed_child(cmd: list[str], timeout: float) -> dict:
    """Wall time and peak RSS of a child process (os.wait4), for CLI runs that include start-up."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = t + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            p.wait()
            return {"timeout_s": timeout}
        time.sleep(0.02)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")[-300:] if p.stderr else ""
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(ru.ru_maxrss / 1e3, 1),
            "exit": os.waitstatus_to_exitcode(status), **({"stderr": err} if os.waitstatus_to_exitcode(status) else {})}


def med(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, all its threads included (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 30.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


# ---- inputs -------------------------------------------------------------------------------------

def cache_dir(fresh: bool) -> str:
    h = hashlib.sha256()
    for f in ("gen_capture.py", "report_task.py", "traffic.py"):
        h.update(open(os.path.join(HERE, f), "rb").read())
    h.update(open(os.path.join(ROOT, "tests", "builders.py"), "rb").read())
    d = os.path.join(tempfile.gettempdir(), "authtrace-bench-cache", h.hexdigest()[:12])
    if fresh and os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d, exist_ok=True)
    return d


def ensure_inputs(cache: str, need: set[str]) -> dict:
    """Generate what is missing, in parallel (2 cores): captures and the report sessions."""
    info_path = os.path.join(cache, "inputs.json")
    info = json.load(open(info_path)) if os.path.exists(info_path) else {}
    wanted = {
        "real": ([PY, "bench/gen_capture.py", os.path.join(cache, "real"), "--entries", "20000", "--kind", "realistic"],
                 "real.mitm"),
        "auth": ([PY, "bench/gen_capture.py", os.path.join(cache, "auth"), "--entries", "20000", "--kind", "auth-heavy"],
                 "auth.mitm"),
        "real5k": ([PY, "bench/gen_capture.py", os.path.join(cache, "real5k"), "--entries", "5000", "--kind", "realistic"],
                   "real5k.mitm"),
        "rep10k": ([PY, "bench/report_task.py", "build", os.path.join(cache, "rep10k.db"), "--hops", "10000"], "rep10k.db"),
        "rep1k": ([PY, "bench/report_task.py", "build", os.path.join(cache, "rep1k.db"), "--hops", "1000"], "rep1k.db"),
        "rep2k": ([PY, "bench/report_task.py", "build", os.path.join(cache, "rep2k.db"), "--hops", "2000"], "rep2k.db"),
    }
    todo = [(k, v) for k, v in wanted.items() if k in need and (k not in info or not os.path.exists(os.path.join(cache, v[1])))]
    if todo:
        log(f"generating inputs into {cache}: {', '.join(k for k, _ in todo)} (once; cached afterwards)")
    running: list = []
    while todo or running:
        while todo and len(running) < 2:
            k, (cmd, out) = todo.pop(0)
            for suffix in ("", "-wal", "-shm"):
                if out.endswith(".db") and os.path.exists(os.path.join(cache, out + suffix)):
                    os.remove(os.path.join(cache, out + suffix))
            running.append((k, subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        time.sleep(0.2)
        for k, p in list(running):
            if p.poll() is not None:
                running.remove((k, p))
                out, err = p.communicate()
                if p.returncode != 0:
                    raise SystemExit(f"generating {k} failed:\n{err[-2000:]}")
                info[k] = json.loads(out.strip().splitlines()[-1])
                json.dump(info, open(info_path, "w"), indent=1)
    return info


# ---- live ---------------------------------------------------------------------------------------

class Proc:
    def __init__(self, cmd: list[str], log_path: str, cpus: set[int] | None = None):
        self.fh = open(log_path, "w")
        self.p = subprocess.Popen(cmd, cwd=ROOT, stdout=self.fh, stderr=subprocess.STDOUT, preexec_fn=pinned(cpus))

    def stop(self, sig=signal.SIGINT, timeout: float = 20.0) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.fh.close()


def cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """The proxy on one core, the load generator and the origin on the others: on a 2-core machine
    otherwise all three compete for the same two cores and the proxy's share of them varies from run
    to run. (None, None) on a 1-core machine."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def live(tmp: str, quick: bool, rounds: int, script: str = os.path.join(ROOT, "cli", "addon.py")) -> dict:
    sys.path.insert(0, HERE)
    import traffic

    proxy_cpus, load_cpus = cpu_split()

    pool = traffic.pool_path(tmp)
    traffic.make_pool(pool)
    up_port = free_port()
    up = Proc([PY, "bench/upstream.py", pool, str(up_port)], os.path.join(tmp, "upstream.log"), load_cpus)
    if not wait_port(up_port, 10):
        up.stop()
        raise SystemExit("upstream did not start: " + open(os.path.join(tmp, "upstream.log")).read())
    warm, dur = (1.0, 4.0) if quick else (2.0, 8.0)
    confdir = os.path.join(tmp, "mitmconf")
    out: dict = {"mode": "regular proxy (absolute-form requests to 127.0.0.1:<proxy port>)", "clients": 16,
                 "pinning": {"proxy": sorted(proxy_cpus or []), "loadgen_and_upstream": sorted(load_cpus or [])},
                 "warmup_s": warm, "duration_s": dur, "rounds": rounds, "direct": {}, "runs": []}
    try:
        for mix in ("ordinary", "auth"):
            r = run_json([PY, "bench/loadgen.py", "--pool", pool, "--port", str(up_port), "--mix", mix,
                          "--warmup", "1", "--duration", str(min(dur, 4.0))], cpus=load_cpus)
            out["direct"][mix] = r
            log(f"live direct {mix}: {r.get('rps')} req/s")
        for rnd in range(rounds):
            for mix in ("ordinary", "auth"):
                order = ("bare", "addon") if (rnd + (mix == "auth")) % 2 == 0 else ("addon", "bare")
                for cfg in order:
                    port = free_port()
                    cmd = [MITMDUMP, "-q", "--listen-host", "127.0.0.1", "-p", str(port), "--set", f"confdir={confdir}"]
                    dbp = None
                    if cfg == "addon":
                        dbp = os.path.join(tmp, f"live-{rnd}-{mix}.db")
                        cmd += ["-s", script]
                        if script.endswith(os.path.join("cli", "addon.py")):
                            cmd += ["--set", f"authtrace_db={dbp}", "--set", "authtrace_print=false",
                                    "--set", "authtrace_findings=false"]
                    md = Proc(cmd, os.path.join(tmp, f"mitmdump-{rnd}-{mix}-{cfg}.log"), proxy_cpus)
                    try:
                        if not wait_port(port, 40):
                            raise SystemExit("mitmdump did not start: " + open(md.fh.name).read()[-2000:])
                        time.sleep(0.5)
                        cpu0 = proc_cpu_s(md.p.pid)
                        r = run_json([PY, "bench/loadgen.py", "--pool", pool, "--port", str(up_port), "--proxy", str(port),
                                      "--mix", mix, "--warmup", str(warm), "--duration", str(dur)], timeout=dur + warm + 120,
                                     cpus=load_cpus)
                        if r.get("requests_total"):
                            r["proxy_cpu_ms_per_req"] = round((proc_cpu_s(md.p.pid) - cpu0) * 1000 / r["requests_total"], 3)
                    finally:
                        md.stop()
                    if dbp:
                        import sqlite3

                        try:
                            c = sqlite3.connect(dbp)
                            r["hops_stored"] = c.execute("select count(*) from hop").fetchone()[0]
                            c.close()
                        except sqlite3.Error as e:
                            r["hops_stored"] = f"unreadable: {e}"
                    r.update(round=rnd, cfg=cfg)
                    out["runs"].append(r)
                    log(f"live round {rnd + 1}/{rounds} {mix:<8} {cfg:<5}: {r.get('rps')} req/s, p50 {r.get('p50_ms')} ms, "
                        f"p99 {r.get('p99_ms')} ms, proxy CPU {r.get('proxy_cpu_ms_per_req')} ms/req" + (f", {r.get('hops_stored')} hops stored" if dbp else ""))
    finally:
        up.stop(signal.SIGTERM)
    summary = {}
    for mix in ("ordinary", "auth"):
        by = {(r["round"], r["cfg"]): r for r in out["runs"] if r.get("mix") == mix}
        s: dict = {}
        for cfg in ("bare", "addon"):
            rs = [r for (_, c), r in by.items() if c == cfg]
            s[cfg] = {k: med([r.get(k) for r in rs]) for k in ("rps", "p50_ms", "p99_ms", "client_cpu_share",
                                                                "proxy_cpu_ms_per_req")}
        rps_ratios, p50_ratios, p99_ratios, cpu_ratios = [], [], [], []
        for rnd in range(rounds):
            b, a = by.get((rnd, "bare")), by.get((rnd, "addon"))
            if b and a and b.get("rps") and a.get("rps"):
                rps_ratios.append(a["rps"] / b["rps"])
                p50_ratios.append(b["p50_ms"] / a["p50_ms"])
                p99_ratios.append(b["p99_ms"] / a["p99_ms"])
                if b.get("proxy_cpu_ms_per_req") and a.get("proxy_cpu_ms_per_req"):
                    cpu_ratios.append(b["proxy_cpu_ms_per_req"] / a["proxy_cpu_ms_per_req"])
        s["rps_ratio"] = med(rps_ratios)
        s["p50_ratio"] = med(p50_ratios)  # bare p50 / addon p50: ≥ budget is good, like throughput
        s["p99_ratio"] = med(p99_ratios)
        s["cpu_ratio"] = med(cpu_ratios)  # bare CPU/request / addon CPU/request: the CPU-bound throughput ratio
        s["rps_ratios"] = [round(x, 3) for x in rps_ratios]
        s["direct_rps"] = out["direct"].get(mix, {}).get("rps")
        summary[mix] = s
    out["summary"] = summary
    return out


def addon_cost(tmp: str, quick: bool, rounds: int) -> dict:
    sys.path.insert(0, HERE)
    import traffic

    pool = traffic.pool_path(tmp)
    if not os.path.exists(pool):
        traffic.make_pool(pool)
    n = "2000" if quick else "4000"
    out = {}
    for mix in ("ordinary", "auth"):
        runs = [run_json([PY, "bench/addon_cost.py", pool, "--mix", mix, "--n", n]) for _ in range(rounds)]
        out[mix] = {"runs": runs, "loop_us_per_flow": med([r.get("loop_us_per_flow") for r in runs]),
                    "cpu_us_per_flow": med([r.get("cpu_us_per_flow") for r in runs]),
                    "hops_per_flow": round(runs[0].get("hops", 0) / max(1, runs[0].get("flows", 1)), 2)}
        log(f"addon cost {mix}: {out[mix]['cpu_us_per_flow']} µs CPU per flow")
    return out


# ---- import -------------------------------------------------------------------------------------

def imports(tmp: str, cache: str, quick: bool, rounds: int) -> dict:
    out: dict = {"rounds": rounds, "files": {}}
    task = [PY, "bench/import_task.py"]

    def fresh_db(name: str) -> str:
        p = os.path.join(tmp, name)
        for s in ("", "-wal", "-shm"):
            if os.path.exists(p + s):
                os.remove(p + s)
        return p

    for kind, stem in (("realistic", "real"), ("auth-heavy", "auth")):
        har, mitm = os.path.join(cache, stem + ".har"), os.path.join(cache, stem + ".mitm")
        f: dict = {"har_mb": round(os.path.getsize(har) / 1e6, 1), "mitm_mb": round(os.path.getsize(mitm) / 1e6, 1),
                   "orjson": [], "import_har": []}
        for rnd in range(rounds):  # alternate the order to spread the machine's noise
            pair = [("orjson", task + ["orjson", har]),
                    ("import_har", task + ["import", har, fresh_db(f"{stem}-har-{rnd}.db")])]
            for name, cmd in (pair if rnd % 2 == 0 else pair[::-1]):
                r = run_json(cmd, timeout=900)
                f[name].append(r)
                log(f"import {kind} {name} round {rnd + 1}/{rounds}: {r.get('wall_s')} s wall, {r.get('cpu_s')} s CPU, "
                    f"peak +{r.get('peak_delta_mb')} MB")
        ratios_wall = [i["wall_s"] / o["wall_s"] for i, o in zip(f["import_har"], f["orjson"], strict=False) if "wall_s" in i and "wall_s" in o]
        ratios_cpu = [i["cpu_s"] / o["cpu_s"] for i, o in zip(f["import_har"], f["orjson"], strict=False) if "cpu_s" in i and "cpu_s" in o]
        f["ratio_wall"], f["ratio_cpu"] = med(ratios_wall), med(ratios_cpu)
        for name in ("orjson", "import_har"):
            f[name + "_wall_s"] = med([r.get("wall_s") for r in f[name]])
            f[name + "_cpu_s"] = med([r.get("cpu_s") for r in f[name]])
            f[name + "_peak_delta_mb"] = med([r.get("peak_delta_mb") for r in f[name]])
        f["hops"] = next((r.get("hops") for r in f["import_har"] if "hops" in r), None)
        if not quick or stem == "real":
            r = run_json(task + ["flowreader", har], timeout=900)
            f["flowreader_har"] = r
            log(f"FlowReader over {kind} HAR: {r.get('wall_s')} s")
        if not quick or stem == "real":
            r = run_json(task + ["flowreader", mitm], timeout=900)
            f["flowreader_mitm"] = r
            log(f"FlowReader over {kind} .mitm: {r.get('wall_s')} s, peak +{r.get('peak_delta_mb')} MB")
        if not quick or stem == "real":
            r = run_json(task + ["import", mitm, fresh_db(f"{stem}-mitm.db")], timeout=900)
            f["import_mitm"] = r
            log(f"import {kind} .mitm: {r.get('wall_s')} s, peak +{r.get('peak_delta_mb')} MB")
        if not quick or stem == "real":
            r = timed_child([AUTHTRACE, "import", har, "--db", fresh_db(f"{stem}-cli.db")], timeout=900)
            f["cli_import_har"] = r
            log(f"CLI `authtrace import` {kind} HAR: {r.get('wall_s')} s, peak RSS {r.get('peak_rss_mb')} MB")
        out["files"][kind] = f
    r5 = run_json(task + ["import", os.path.join(cache, "real5k.mitm"), fresh_db("real5k-mitm.db")], timeout=900)
    out["mitm_5k"] = r5
    r20 = out["files"]["realistic"]["import_mitm"]
    if "peak_delta_mb" in r5 and "peak_delta_mb" in r20:
        extra_file_mb = (os.path.getsize(os.path.join(cache, "real.mitm")) - os.path.getsize(os.path.join(cache, "real5k.mitm"))) / 1e6
        out["mitm_flat_ratio"] = round(max(0.0, r20["peak_delta_mb"] - r5["peak_delta_mb"]) / extra_file_mb, 3)
        out["mitm_extra_file_mb"] = round(extra_file_mb, 1)
    log(f".mitm import 5k: peak +{r5.get('peak_delta_mb')} MB vs 20k: +{r20.get('peak_delta_mb')} MB")
    return out


# ---- report -------------------------------------------------------------------------------------

def report(tmp: str, cache: str, quick: bool) -> dict:
    out: dict = {}
    # 1k and 2k hops show how run_checks scales; render is included when reports/render.py imports
    for name in ("rep1k", "rep2k", "rep10k"):
        db_copy = os.path.join(tmp, name + ".db")
        shutil.copy(os.path.join(cache, name + ".db"), db_copy)
        timeout = (30 if quick else 120) if name == "rep10k" else 300
        r = run_json([PY, "bench/report_task.py", "measure", db_copy, os.path.join(tmp, name + ".html")], timeout=timeout)
        out[name] = r
        log(f"report {name}: {json.dumps(r)[:300]}")
    if "timeout_s" in out["rep10k"]:
        # checks did not finish: render 10k hops without findings, so the renderer is still measured
        r = run_json([PY, "-c", RENDER_ONLY, os.path.join(tmp, "rep10k.db")], timeout=300)
        out["rep10k_render_only"] = r
        log(f"report rep10k render only (no findings): {json.dumps(r)[:300]}")
    elif not quick:
        r = timed_child([AUTHTRACE, "report", "--db", os.path.join(tmp, "rep10k.db"), "-o",
                         os.path.join(tmp, "cli-report.html")], timeout=300)
        out["cli_report"] = r
        log(f"CLI `authtrace report` 10k hops: {r}")
    return out


RENDER_ONLY = r"""
import json, sys, time
from authtrace.store import db
from authtrace.reports.diagnose import assemble
from authtrace.reports.html import render_html
engine = db.open_db(sys.argv[1]); s = db.load_session(engine)
hops = db.load_hops(engine, s.id)
t = time.perf_counter(); html = render_html(assemble(s, hops, []))
print(json.dumps({"hops": len(hops), "render_s": round(time.perf_counter() - t, 3), "html_mb": round(len(html.encode()) / 1e6, 2)}))
"""


# ---- table --------------------------------------------------------------------------------------

def verdict(ratio: float | None, budget: float, higher_is_better: bool) -> str:
    if ratio is None:
        return "not measured"
    if higher_is_better:
        return "met" if ratio >= budget else f"MISSED by {budget - ratio:.2f} ({ratio / budget:.0%} of budget)"
    return "met" if ratio <= budget else f"MISSED: {ratio / budget:.1f}x the budget"


def table(res: dict) -> tuple[str, list[dict]]:
    rows: list[dict] = []
    lines = []

    def row(section, figure, value, baseline, ratio, budget, status):
        rows.append(dict(section=section, figure=figure, value=value, baseline=baseline, ratio=ratio, budget=budget,
                         status=status))

    lv = res.get("live")
    if lv:
        for mix, label, key in (("ordinary", "(a) ordinary pages", "live_ordinary"), ("auth", "(b) auth-heavy", "live_auth")):
            s = lv["summary"][mix]
            b = BUDGETS[key]
            row("live", f"{label}: requests/s", s["addon"]["rps"], f"bare {s['bare']['rps']} (direct {s['direct_rps']})",
                s["rps_ratio"], f">= {b}", verdict(s["rps_ratio"], b, True))
            row("live", f"{label}: p50 ms", s["addon"]["p50_ms"], f"bare {s['bare']['p50_ms']}", s["p50_ratio"],
                f">= {b} (bare/addon)", verdict(s["p50_ratio"], b, True))
            row("live", f"{label}: p99 ms", s["addon"]["p99_ms"], f"bare {s['bare']['p99_ms']}", s["p99_ratio"], "-", "-")
            row("live", f"{label}: mitmdump CPU ms/request", s["addon"]["proxy_cpu_ms_per_req"],
                f"bare {s['bare']['proxy_cpu_ms_per_req']}", s["cpu_ratio"], f">= {b} (bare/addon)",
                verdict(s["cpu_ratio"], b, True))
    ac = res.get("addon_cost")
    if ac:
        for mix in ("ordinary", "auth"):
            row("cost", f"addon CPU per flow, {mix} mix (in-process)", f"{ac[mix]['cpu_us_per_flow']} µs",
                "bare mitmdump ≈ 1e6/rps µs per request", None, "-", "-")
    im = res.get("import")
    if im:
        for kind, key in (("realistic", "import_realistic"), ("auth-heavy", "import_auth")):
            f = im["files"][kind]
            b = BUDGETS[key]
            row("import", f"HAR {kind} ({f['har_mb']} MB, {f.get('hops')} hops): import_file wall s",
                f["import_har_wall_s"], f"orjson.loads {f['orjson_wall_s']}", f["ratio_wall"], f"<= {b}",
                verdict(f["ratio_wall"], b, False))
            row("import", f"HAR {kind}: import_file CPU s", f["import_har_cpu_s"], f"orjson.loads {f['orjson_cpu_s']}",
                f["ratio_cpu"], f"<= {b}", verdict(f["ratio_cpu"], b, False))
            row("import", f"HAR {kind}: peak memory (over start-up)", f"+{f['import_har_peak_delta_mb']} MB",
                f"orjson.loads +{f['orjson_peak_delta_mb']} MB", None, "-", "-")
            fr = f.get("flowreader_har")
            if fr and "wall_s" in fr:
                row("import", f"HAR {kind}: mitmproxy FlowReader s", fr["wall_s"], f"orjson.loads {f['orjson_wall_s']}",
                    round(fr["wall_s"] / f["orjson_wall_s"], 2), "-", "reference")
            fm = f.get("flowreader_mitm")
            im_m = f.get("import_mitm", {})
            if fm and "wall_s" in fm:
                mitm_ratio = round(im_m["wall_s"] / fm["wall_s"], 2) if "wall_s" in im_m else None
                row("import", f".mitm {kind} ({f['mitm_mb']} MB): import_file s", im_m.get("wall_s"),
                    f"FlowReader {fm['wall_s']}", mitm_ratio, f"<= {BUDGETS['import_mitm']}",
                    verdict(mitm_ratio, BUDGETS["import_mitm"], False))
                row("import", f".mitm {kind}: import_file peak memory", f"+{im_m.get('peak_delta_mb')} MB",
                    f"FlowReader +{fm.get('peak_delta_mb')} MB", None, "-", "-")
            elif im_m:
                row("import", f".mitm {kind}: import_file s / peak", f"{im_m.get('wall_s')} s / +{im_m.get('peak_delta_mb')} MB",
                    "-", None, "-", "-")
            cli = f.get("cli_import_har")
            if cli:
                row("import", f"CLI `authtrace import` {kind} HAR (with start-up)", cli.get("wall_s"),
                    f"peak RSS {cli.get('peak_rss_mb')} MB", None, "-", "-")
        r5 = im.get("mitm_5k", {})
        row("import", ".mitm import peak memory 20k vs 5k entries (growth / extra file MB)",
            f"+{im['files']['realistic'].get('import_mitm', {}).get('peak_delta_mb')} MB",
            f"5k: +{r5.get('peak_delta_mb')} MB; file +{im.get('mitm_extra_file_mb')} MB", im.get("mitm_flat_ratio"),
            f"<= {BUDGETS['mitm_flat']} (flat)",
            verdict(im.get("mitm_flat_ratio"), BUDGETS["mitm_flat"], False))
    rp = res.get("report")
    if rp:
        for name in ("rep1k", "rep2k", "rep10k"):
            r = rp.get(name, {})
            if "timeout_s" in r:
                row("report", f"{name}: load + run_checks + render", f"> {r['timeout_s']} s (timed out)", "-", None, "-",
                    "did not finish")
                continue
            if "error" in r:
                row("report", f"{name}", "error", r["error"][:120], None, "-", "-")
                continue
            row("report", f"{r.get('hops')} hops: run_checks s", r.get("checks_s"), f"load {r.get('load_s')} s", None, "-", "-")
            if "render_s" in r:
                row("report", f"{r.get('hops')} hops: render_html s ({r.get('html_mb')} MB)", r["render_s"],
                    f"write_report {r.get('write_report_s')} s", None,
                    f"<= {BUDGETS['report_s']} s" if name == "rep10k" else "-",
                    verdict(r["render_s"], BUDGETS["report_s"], False) if name == "rep10k" else "-")
            elif "render" in r:
                row("report", f"{r.get('hops')} hops: render", r["render"], "-", None, "-", "-")
        ro = rp.get("rep10k_render_only")
        if ro and "render_s" in ro:
            row("report", f"{ro['hops']} hops: render_html s, no findings ({ro['html_mb']} MB)", ro["render_s"], "-", None,
                f"<= {BUDGETS['report_s']} s", verdict(ro["render_s"], BUDGETS["report_s"], False))
        cli = rp.get("cli_report")
        if cli:
            row("report", "CLI `authtrace report` 10k hops (with start-up)", cli.get("wall_s"), "-", None, "-", "-")
    widths = [8, 62, 18, 34, 7, 22, 0]
    head = ["section", "figure", "value", "baseline", "ratio", "budget", "status"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    lines.append("-" * 170)
    for r in rows:
        vals = [r["section"], r["figure"], str(r["value"]), str(r["baseline"]),
                "" if r["ratio"] is None else f"{r['ratio']:.2f}", str(r["budget"]), str(r["status"])]
        lines.append("  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)).rstrip())
    return "\n".join(lines), rows


def meta() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem = next((ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), "0")
    try:
        import mitmproxy.version as mv
        mver = mv.VERSION
    except Exception:
        mver = "?"
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "addons", "store", "reports", "cli"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": platform.platform(),
            "cpu": cpu, "cores": os.cpu_count(), "mem_gb": round(int(mem) / 1e6, 1),
            "python": platform.python_version(), "mitmproxy": mver, "commit": rev + ("+uncommitted" if dirty else ""),
            "loadavg_start": os.getloadavg()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs, fewer reference runs (a few minutes)")
    ap.add_argument("--only", default="live,cost,import,report", help="comma list of: live, cost, import, report")
    ap.add_argument("--rounds", type=int, help="rounds for live and import (default 3, --quick 2 live / 1 import)")
    ap.add_argument("--fresh", action="store_true", help="regenerate the cached inputs")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (databases, logs, HTML)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--script", default=os.path.join(ROOT, "cli", "addon.py"),
                    help="the addon file the live runs load (another one measures what any addon costs)")
    a = ap.parse_args()
    only = set(a.only.split(","))
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="authtrace-bench-")
    res: dict = {"meta": meta(), "quick": a.quick, "budgets": BUDGETS}
    try:
        cache = cache_dir(a.fresh)
        need = set()
        if "import" in only:
            need |= {"real", "auth", "real5k"}
        if "report" in only:
            need |= {"rep10k", "rep1k", "rep2k"}
        if need:
            res["inputs"] = ensure_inputs(cache, need)
        if "live" in only:
            res["live"] = live(tmp, a.quick, a.rounds or (2 if a.quick else 3), os.path.abspath(a.script))
        if "cost" in only:
            res["addon_cost"] = addon_cost(tmp, a.quick, 1 if a.quick else 3)
        if "import" in only:
            res["import"] = imports(tmp, cache, a.quick, a.rounds or (1 if a.quick else 3))
        if "report" in only:
            res["report"] = report(tmp, cache, a.quick)
    finally:
        res["meta"]["loadavg_end"] = os.getloadavg()
        res["meta"]["bench_s"] = round(time.time() - t_start, 1)
        text, rows = table(res)
        res["table"] = rows
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1, default=str)
        m = res["meta"]
        print(f"\nauthtrace benchmarks  {m['date']}  {m['cpu']} x{m['cores']}  Python {m['python']}  mitmproxy {m['mitmproxy']}"
              f"  commit {m['commit']}  load {m['loadavg_start'][0]:.1f}->{m['loadavg_end'][0]:.1f}"
              f"  {'quick' if a.quick else 'full'} run {m['bench_s']} s\n")
        print(text)
        print(f"\nwritten: {a.out}" + (f"; scratch kept in {tmp}" if a.keep else ""))
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
