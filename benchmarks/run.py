"""perfbench benchmarks: requests per generator CPU-second, side by side with peers, in one run.

Starts a private nginx (benchmarks/nginx_server.py: one worker pinned to CPU 1, a fixed 11-byte
JSON body, keep-alive without a request limit) and runs every generator in its own process
pinned to CPU 0, 50 keep-alive connections, for the same number of seconds. A generator's CPU
time is its own process tree's user + system time (getrusage(RUSAGE_CHILDREN) deltas around the
run, exact once the child is reaped). Only ratios within one run mean anything on a shared,
noisy machine: every repetition runs every generator once (in rotated order) and the table shows
medians, the spread and each figure's ratio to the naive aiohttp loop of the same repetition.

    python benchmarks/run.py                       # comparison (3 x 10 s each), fixed rate (with k6), gzip
    python benchmarks/run.py --soak-minutes 10     # ... + the engine's RSS over a 10-minute run
    python benchmarks/run.py --only fixed          # just the fixed-rate test: perfbench's paths and k6
    python benchmarks/run.py --only fixed --fixed-seconds 5 --fixed-paths lean   # a quick one

Peers are installed by benchmarks/install_peers.sh (Debian packages and a separate tool venv);
a peer that is not installed is reported as unavailable and skipped. Results are printed and
written as JSON to benchmarks/results/<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
import peers  # noqa: E402
from nginx_server import NginxServer, nginx_binary  # noqa: E402

HERE = Path(__file__).parent
ROOT = HERE.parent
CLOSED_PEERS = ("naive", "wrk", "hey", "k6", "locust_fast", "locust_http")
PROBE_RATE = {"aiohttp": 40_000, "lean": 150_000}  # surely above what the path can do on one core
DEFAULT_PROBE_RATE = 150_000
PROBE_STEP = 1.1  # the max runs' rate: this much above the floor, and up by this much until saturated
ENGINE_PATHS = ("lean", "aiohttp")  # those of perfbench.engine.senders.HTTP_PATHS that exist are measured


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- targets
class PythonTarget:
    """The fallback target (benchmarks/target.py, uvloop) when nginx is not installed."""

    def __init__(self, cpu: int | None):
        self.cpu = cpu
        self.version = "benchmarks/target.py (uvloop)"

    def __enter__(self) -> str:
        self._tmp = tempfile.TemporaryDirectory()
        port_file = Path(self._tmp.name) / "port"
        self.proc = subprocess.Popen(pin([sys.executable, str(HERE / "target.py"), str(port_file), "7200"],
                                         self.cpu), start_new_session=True)
        self.pid = self.proc.pid
        while not port_file.exists() or not port_file.read_text():
            if self.proc.poll() is not None:
                raise SystemExit("benchmark target failed to start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port_file.read_text()}/"

    def worker_pids(self) -> list[int]:
        return [self.pid]

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._tmp.cleanup()


def pin(cmd: list[str], cpu: int | None) -> list[str]:
    return (["taskset", "-c", str(cpu)] + cmd) if cpu is not None else cmd


# ---------------------------------------------------------------------------- measuring one run
def server_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def measure(peer: peers.Peer, gen_cpu: int | None, server, seconds: float, workdir: Path,
            sample_every: float = 0.5, timeout: float | None = None) -> dict:
    """Run one generator to completion; its counts, own CPU seconds, wall, and CPU/RSS samples."""
    cmd = pin(peer.cmd, gen_cpu)
    env = {**os.environ, **peer.env, **(server.client_env() if hasattr(server, "client_env") else {})}
    out_f, err_f = workdir / "stdout", workdir / "stderr"
    srv_pids = server.worker_pids()
    srv_before = server_cpu(srv_pids)
    samples: list[tuple[float, float, int]] = []  # (seconds since start, CPU s, RSS bytes)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with out_f.open("w") as out, err_f.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=workdir)
        ps = psutil.Process(proc.pid)
        limit = t0 + (timeout or seconds + 90)
        try:
            while True:
                try:
                    proc.wait(sample_every)
                    break
                except subprocess.TimeoutExpired:
                    pass
                try:
                    with ps.oneshot():
                        c = ps.cpu_times()
                        samples.append((time.perf_counter() - t0, c.user + c.system, ps.memory_info().rss))
                except psutil.Error:
                    pass
                if time.perf_counter() > limit:
                    raise RuntimeError(f"{peer.name} did not finish in time")
        except BaseException:  # a timeout, Ctrl-C or SIGTERM: the generator (our own child) goes too
            if proc.poll() is None:
                proc.kill()  # by its PID
                proc.wait()
            raise
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv = server_cpu(srv_pids) - srv_before
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stdout, stderr = out_f.read_text(errors="replace"), err_f.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{peer.name} exited {proc.returncode}: {stderr[-1500:]}")
    ok, errors, extra = peer.parse(stdout, stderr, workdir)
    span = seconds
    gen = extra.get("generator") or {}
    if peer.model == "open":  # a saturated open run keeps sending its backlog up to the grace period
        span = seconds + ((gen.get("lag_ms") or {}).get("max") or 0) / 1000
    return {"ok": ok, "errors": errors, "cpu_s": cpu, "wall_s": wall, "load_s": span, "rps": ok / span,
            "per_cpu_s": ok / cpu if cpu else None, "server_cpu_util": srv / span, "extra": extra,
            "samples": samples}


def shown(cmd: list[str], url: str, gen_cpu: int | None) -> str:
    """The command as run, with $URL for the target, $TMP for the run's temp dir, paths relative."""
    s = shlex.join(pin(cmd, gen_cpu)).replace(url.rstrip("/"), "$URL").replace("$URL/", "$URL")
    s = re.sub(r"/[^ ]*/perfbench-bench-[^/ ]+", "$TMP", s)
    return s.replace(str(ROOT) + "/", "").replace(sys.executable, ".venv/bin/python")


# ---------------------------------------------------------------------------- the comparison
def build_peers(keys: list[str], url: str, seconds: float, conns: int, workdir: Path,
                engine_rates: dict[str, float]) -> tuple[list[peers.Peer], dict[str, str]]:
    made, unavailable = [], {}
    builders = {
        "naive": lambda: peers.naive(url, seconds, conns),
        "wrk": lambda: peers.wrk(url, seconds, conns),
        "hey": lambda: peers.hey(url, seconds, conns),
        "k6": lambda: peers.k6(url, seconds, conns, workdir),
        "locust_fast": lambda: peers.locust(url, seconds, conns, "Fast"),
        "locust_http": lambda: peers.locust(url, seconds, conns, "Http"),
    }
    for k in keys:
        if k in builders:
            try:
                made.append(builders[k]())
            except peers.PeerUnavailable as e:
                unavailable[k] = str(e)
    for path, rate in engine_rates.items():
        made.append(peers.engine(url, seconds, rate, conns, path))
    return made, unavailable


def probe_rate(url: str, path: str, conns: int, gen_cpu, server, workdir: Path, seconds: float = 3,
               engine=peers.engine) -> dict:
    """Find an open-model rate just above what the engine can send: saturated, with a small backlog.

    A rate far above capacity makes the engine plan, queue and finally abort a huge backlog, CPU
    the comparison would charge to it (measured here: it costs a quarter of its throughput); a
    rate below capacity is not a max. So: one short run far above capacity gives a floor, then
    short runs at 1.1x the floor, stepping up by 1.1x until the run is at capacity (the send lag p99
    beyond the engine's bound, or not every planned request sent) twice in a row at the same rate
    (on a shared machine one run can stall on other work). Steps of 1.25x (until 2026-11-21) could
    land up to 25% above capacity, where 3-10% of the rows recorded were arrivals still due when the
    grace period ended, recorded as aborted: CPU spent on rows that are not requests.
    """
    probe = PROBE_RATE.get(path, DEFAULT_PROBE_RATE)
    r = measure(engine(url, seconds, probe, conns, path), gen_cpu, server, seconds, workdir)
    steps = [{"rate": probe, "rps": round(r["rps"])}]
    rate = max(1000, math.ceil(PROBE_STEP * r["rps"] / 1000) * 1000)
    confirmed = False
    for _ in range(10):
        r = measure(engine(url, seconds, rate, conns, path), gen_cpu, server, seconds, workdir)
        gen = r["extra"].get("generator") or {}
        lag_p99 = (gen.get("lag_ms") or {}).get("p99") or 0.0
        # at capacity: the sends fell behind the plan (lag beyond the bound) or some were never sent.
        # The engine's own "saturated" flag is not enough: a few arrivals that found the in-flight
        # cap reached during a burst set it well below capacity (the 2026-11-21-130140 run stopped
        # the aiohttp path's probe at 8,000/s, 70% of what it does flat out)
        full = lag_p99 > (gen.get("lag_bound_ms") or 10.0) or r["ok"] < rate * seconds * 0.99
        steps.append({"rate": rate, "rps": round(r["rps"]), "saturated": gen.get("saturated"),
                      "lag_p99_ms": lag_p99, "at_capacity": full})
        if full and confirmed:
            break
        if full:  # once more at the same rate: on a shared machine a burst of other work can stall one run
            confirmed = True
            continue
        confirmed = False
        rate = math.ceil(PROBE_STEP * rate / 1000) * 1000
    return {"rate": rate, "steps": steps}


def summarize(rows: list[dict]) -> dict:
    by_rep_naive = {r["rep"]: r["per_cpu_s"] for r in rows if r["key"] == "naive_aiohttp"}
    by_rep_k6 = {r["rep"]: r["per_cpu_s"] for r in rows if r["key"] == "k6"}
    out = {}
    for key in dict.fromkeys(r["key"] for r in rows):
        rs = [r for r in rows if r["key"] == key]
        per = [r["per_cpu_s"] for r in rs]
        ratios = [r["per_cpu_s"] / by_rep_naive[r["rep"]] for r in rs if by_rep_naive.get(r["rep"])]
        gen = [r["extra"].get("generator") or {} for r in rs]
        vs_k6 = [r["per_cpu_s"] / by_rep_k6[r["rep"]] for r in rs if by_rep_k6.get(r["rep"])]
        own = [r["extra"]["ok_per_load_cpu_s"] for r in rs if r["extra"].get("ok_per_load_cpu_s")]
        out[key] = {
            "name": rs[0]["name"], "model": rs[0]["model"], "command": rs[0]["command"], "n": len(rs),
            "req_per_cpu_s_median": statistics.median(per), "req_per_cpu_s_min": min(per),
            "req_per_cpu_s_max": max(per),
            "vs_naive_median": statistics.median(ratios) if ratios else None,
            "vs_naive_min": min(ratios) if ratios else None, "vs_naive_max": max(ratios) if ratios else None,
            "vs_k6_median": statistics.median(vs_k6) if vs_k6 else None,
            "engine_reported_ok_per_load_cpu_s_median": statistics.median(own) if own else None,
            "rps_median": statistics.median(r["rps"] for r in rs),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in rs),
            "server_cpu_util_median": statistics.median(r["server_cpu_util"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "open_rate": rs[0].get("open_rate"),
            "engine_path_reported": sorted({g.get("path") for g in gen if g.get("path")}) or None,
            "saturated": [g.get("saturated") for g in gen] if gen and gen[0] else None,
        }
    return out


def comparison(args, url, server, gen_cpu, workdir: Path, paths: list[str]) -> dict:
    keys = [k.strip() for k in args.peers.split(",") if k.strip()]
    wanted = [p for p in args.engine_paths.split(",") if p] if args.engine_paths else list(ENGINE_PATHS)
    missing = [p for p in wanted if p not in paths]
    engine_paths = [p for p in wanted if p in paths]
    rates, probes = {}, {}
    for p in engine_paths:
        if args.engine_max_rate:
            rates[p] = args.engine_max_rate
        else:
            log(f"probing the engine's capacity on the {p} path (3 s)...")
            probes[p] = probe_rate(url, p, args.connections, gen_cpu, server, workdir)
            rates[p] = probes[p]["rate"]
    plist, unavailable = build_peers(keys, url, args.seconds, args.connections, workdir, rates)
    for p in missing:
        unavailable[f"engine_{p}"] = f"HTTP path {p!r} is not in perfbench.engine.senders.HTTP_PATHS yet"
    rows = []
    for rep in range(args.repeat):
        order = plist[rep % len(plist):] + plist[:rep % len(plist)]  # rotate: drift spreads evenly
        for peer in order:
            log(f"rep {rep + 1}/{args.repeat}: {peer.name} ...")
            try:
                r = measure(peer, gen_cpu, server, args.seconds, workdir)
            except (RuntimeError, ValueError, KeyError, json.JSONDecodeError) as e:
                log(f"  failed: {e}")
                unavailable.setdefault(peer.key, f"failed: {str(e)[:300]}")
                continue
            r.pop("samples")
            rows.append({"rep": rep + 1, "key": peer.key, "name": peer.name, "model": peer.model,
                         "open_rate": peer.open_rate, "command": shown(peer.cmd, url, gen_cpu), **r})
            log(f"  {r['ok']} ok, {r['errors']} errors, {r['cpu_s']:.2f} CPU s, "
                f"{r['per_cpu_s']:.0f} req/CPU-s, server CPU {r['server_cpu_util'] * 100:.0f}%")
    return {"rows": rows, "summary": summarize(rows) if rows else {}, "unavailable": unavailable,
            "engine_probes": probes}


# ---------------------------------------------------------------------------- fixed rate and soak
def cpu_rate(samples, t_from: float, t_to: float) -> float | None:
    """CPU seconds per second between two sample times (the steady part of a run)."""
    win = [s for s in samples if t_from <= s[0] <= t_to]
    if len(win) < 2 or win[-1][0] <= win[0][0]:
        return None
    return (win[-1][1] - win[0][1]) / (win[-1][0] - win[0][0])


def fixed_rate(args, url, server, gen_cpu, workdir: Path, path: str) -> dict:
    """perfbench's engine (open model) at the fixed rate: achieved, dropped, send lag, CPU."""
    secs, rate = args.fixed_seconds, args.fixed_rate
    peer = peers.engine(url, secs, rate, args.connections, path)
    log(f"fixed rate: perfbench [{path}] at {rate:g} req/s for {secs:g} s ...")
    r = measure(peer, gen_cpu, server, secs, workdir)
    gen = r["extra"].get("generator", {})
    planned = gen.get("planned") or round(rate * secs)
    achieved = r["ok"] / secs
    # the steady window: from 5 s after start (imports and set-up take ~1-2 s) to 3 s before
    # the plan's end, so neither start-up nor the drain counts
    steady = cpu_rate(r["samples"], *steady_window(secs))
    out = {
        "generator": f"perfbench [{path}]", "path": path, "path_reported": gen.get("path"), "target_rps": rate, "seconds": secs,
        "command": shown(peer.cmd, url, gen_cpu),
        "planned": planned, "ok": r["ok"], "errors": r["errors"], "achieved_rps": achieved,
        "achieved_vs_target_pct": (achieved / rate - 1) * 100,
        "within_1pct": abs(achieved / rate - 1) <= 0.01,
        "dropped_or_failed": planned - r["ok"], "aborted": gen.get("aborted"), "capped": gen.get("capped"),
        "send_lag_ms": gen.get("lag_ms"), "saturated": gen.get("saturated"),
        "saturation_reasons": gen.get("saturation_reasons"),
        "latency_p99_ms": r["extra"].get("p99_ms"),
        "cpu_s_total": r["cpu_s"], "cpu_pct_whole_process": r["cpu_s"] / secs * 100,
        "cpu_pct_steady": steady * 100 if steady is not None else None,
        "cpu_pct_engine_reported_steady": (r["extra"].get("steady") or {}).get("cpu_pct"),
        "server_cpu_util": r["server_cpu_util"],
    }
    log(f"  achieved {achieved:.1f} req/s ({out['achieved_vs_target_pct']:+.2f}%), lag p99 "
        f"{(gen.get('lag_ms') or {}).get('p99')} ms, CPU {out['cpu_pct_whole_process']:.1f}% whole process, "
        f"{_pct(out['cpu_pct_steady'])} steady")
    return out


def steady_window(secs: float) -> tuple[float, float]:
    """From 5 s after start (imports and set-up take ~1-2 s) to 3 s before the plan's end, so neither
    start-up nor the drain counts (a short run has no steady window)."""
    return 5.0, secs + 1.0 - 3.0


def fixed_rate_k6(args, url, server, gen_cpu, workdir: Path) -> dict:
    """k6 at the same fixed rate (constant-arrival-rate, as many VUs as perfbench's in-flight cap)."""
    secs, rate = args.fixed_seconds, args.fixed_rate
    peer = peers.k6_rate(url, secs, rate, args.connections, workdir)
    log(f"fixed rate: k6 constant-arrival-rate at {rate:g} req/s for {secs:g} s ...")
    r = measure(peer, gen_cpu, server, secs, workdir)
    ex = r["extra"]
    steady = cpu_rate(r["samples"], *steady_window(secs))
    achieved = r["ok"] / secs
    out = {
        "generator": "k6 constant-arrival-rate", "path": "k6", "target_rps": rate, "seconds": secs,
        "command": shown(peer.cmd, url, gen_cpu), "planned": round(rate * secs), "ok": r["ok"], "errors": r["errors"],
        "achieved_rps": achieved, "achieved_vs_target_pct": (achieved / rate - 1) * 100,
        "within_1pct": abs(achieved / rate - 1) <= 0.01,
        "dropped_or_failed": ex["dropped_iterations"] + r["errors"], "dropped_iterations": ex["dropped_iterations"],
        "send_lag_ms": None, "latency_p99_ms": ex.get("p99_ms"), "vus_max": ex.get("vus_max"),
        "cpu_s_total": r["cpu_s"], "cpu_pct_whole_process": r["cpu_s"] / secs * 100,
        "cpu_pct_steady": steady * 100 if steady is not None else None, "server_cpu_util": r["server_cpu_util"],
    }
    log(f"  achieved {achieved:.1f} req/s, dropped {ex['dropped_iterations']}, CPU {out['cpu_pct_whole_process']:.1f}%"
        " whole process")
    return out


def fixed_comparison(args, url, server, gen_cpu, workdir: Path, paths: list[str]) -> dict:
    """perfbench's paths and k6 at the same fixed rate, ``--fixed-repeat`` times in rotated order; per
    repetition, each one's whole-process CPU over k6's (the process tree's user + system time over the
    run, start-up and the end of the run included, for both)."""
    jobs = [(p, lambda p=p: fixed_rate(args, url, server, gen_cpu, workdir, p)) for p in paths]
    if not args.no_k6_fixed:
        jobs.append(("k6", lambda: fixed_rate_k6(args, url, server, gen_cpu, workdir)))
    runs, unavailable = [], {}
    for rep in range(args.fixed_repeat):
        for key, job in jobs[rep % len(jobs):] + jobs[:rep % len(jobs)]:
            if key in unavailable:
                continue
            try:
                runs.append({"rep": rep + 1, **job()})
            except (peers.PeerUnavailable, RuntimeError, ValueError, KeyError, json.JSONDecodeError) as e:
                log(f"  failed: {e}")
                unavailable[key] = str(e)[:300]
    k6_cpu = {r["rep"]: r["cpu_s_total"] for r in runs if r["path"] == "k6"}
    table = []
    for key in dict.fromkeys(r["path"] for r in runs):
        rs = [r for r in runs if r["path"] == key]
        ratios = [r["cpu_s_total"] / k6_cpu[r["rep"]] for r in rs if k6_cpu.get(r["rep"])]
        lag99 = [(r["send_lag_ms"] or {}).get("p99") for r in rs]
        lag99 = [x for x in lag99 if x is not None]

        def med(field: str, rs=rs) -> float | None:
            vals = [r[field] for r in rs if r.get(field) is not None]
            return statistics.median(vals) if vals else None
        table.append({
            "generator": rs[0]["generator"], "path": key, "n": len(rs),
            "achieved_rps_median": med("achieved_rps"), "achieved_vs_target_pct_worst":
                max((r["achieved_vs_target_pct"] for r in rs), key=abs),
            "dropped_or_failed_max": max(r["dropped_or_failed"] for r in rs),
            "send_lag_p99_ms_max": max(lag99) if lag99 else None,
            "cpu_pct_whole_process_median": med("cpu_pct_whole_process"),
            "cpu_pct_whole_process_min": min(r["cpu_pct_whole_process"] for r in rs),
            "cpu_pct_whole_process_max": max(r["cpu_pct_whole_process"] for r in rs),
            "cpu_pct_steady_median": med("cpu_pct_steady"),
            "cpu_vs_k6_median": statistics.median(ratios) if ratios else None,
            "cpu_vs_k6_min": min(ratios) if ratios else None, "cpu_vs_k6_max": max(ratios) if ratios else None,
            "latency_p99_ms_median": med("latency_p99_ms"),
        })
    return {"rate": args.fixed_rate, "seconds": args.fixed_seconds, "repeat": args.fixed_repeat, "runs": runs,
            "table": table, "unavailable": unavailable}


def linfit(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


def soak(args, url, server, gen_cpu, workdir: Path, path: str) -> dict:
    secs = args.soak_minutes * 60
    warm = min(120.0, 0.2 * secs)
    peer = peers.engine(url, secs, args.fixed_rate, args.connections, path)
    log(f"soak: perfbench [{path}] at {args.fixed_rate:g} req/s for {args.soak_minutes:g} min, RSS each second ...")
    r = measure(peer, gen_cpu, server, secs, workdir, sample_every=1.0, timeout=secs + 180)
    # after warm-up, and before the run's end: the last second can catch the final flush, the
    # Parquet conversion and the summary (a transient peak, not the steady state)
    s = [x for x in r["samples"] if warm <= x[0] <= secs - 1.0]
    slope = linfit([x[0] for x in s], [x[2] for x in s]) * 60 if len(s) > 2 else None
    gen = r["extra"].get("generator", {})
    out = {
        "path": path, "path_reported": gen.get("path"), "rate": args.fixed_rate, "seconds": secs,
        "command": shown(peer.cmd, url, gen_cpu), "warmup_s": warm,
        "rss_slope_bytes_per_min": slope,
        "rss_at_warmup_end_mb": s[0][2] / 2**20 if s else None, "rss_at_end_mb": s[-1][2] / 2**20 if s else None,
        "rss_max_mb": max(x[2] for x in r["samples"]) / 2**20 if r["samples"] else None,
        "ok": r["ok"], "errors": r["errors"], "send_lag_ms": gen.get("lag_ms"),
        "cpu_pct_steady": (cpu_rate(r["samples"], warm, secs - 2) or 0) * 100,
        "rss_samples": [(round(t, 1), rss) for t, _c, rss in r["samples"]],
    }
    log(f"  RSS slope {slope or 0:,.0f} bytes/min after {warm:g} s warm-up "
        f"({out['rss_at_warmup_end_mb']:.1f} -> {out['rss_at_end_mb']:.1f} MB)")
    return out


# ---------------------------------------------------------------------------- machine and output
def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    git_head = None
    try:  # read, never run git
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        git_head = (ROOT / ".git" / head[5:]).read_text().strip() if head.startswith("ref: ") else head
    except OSError:
        pass
    return {
        "cpu_model": info.get("Model name", "").strip(), "cpus": os.cpu_count(),
        "hypervisor": info.get("Hypervisor vendor", "").strip() or None,
        "kernel": platform.release(), "os": _os_release(), "load_avg_at_start": os.getloadavg(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "perfbench_commit": git_head,
    }


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def print_report(res: dict) -> None:
    m, cfg = res["machine"], res["config"]
    print(f"\nmachine: {m['cpu_model']}, {m['cpus']} CPUs, Linux {m['kernel']}; target {res['target']}; "
          f"generator on CPU {cfg['generator_cpu']}, target on CPU {cfg['server_cpu']}")
    cmp_ = res.get("comparison")
    if cmp_ and cmp_["summary"]:
        print(f"\n{cfg['connections']} keep-alive connections, {cfg['seconds']:g} s per run, {cfg['repeat']} "
              f"repetitions (median [min-max]); ratio = req/CPU-s over the naive loop's of the same repetition\n")
        print(f"{'generator':38} {'req/CPU-s':>10} {'[min - max]':>17} {'vs naive':>8} {'vs k6':>6} {'req/s':>8} "
              f"{'gen CPU s':>9} {'nginx CPU':>9}")
        for s in sorted(cmp_["summary"].values(), key=lambda s: -s["req_per_cpu_s_median"]):
            name = s["name"] + (f" open {s['open_rate']:g}/s" if s["open_rate"] else "")
            ratio = f"{s['vs_naive_median']:.2f}" if s["vs_naive_median"] is not None else "-"
            spread = f"[{s['req_per_cpu_s_min']:,.0f} - {s['req_per_cpu_s_max']:,.0f}]"
            k6r = f"{s['vs_k6_median']:.2f}" if s["vs_k6_median"] is not None else "-"
            print(f"{name:38} {s['req_per_cpu_s_median']:10,.0f} {spread:>17} {ratio:>8} {k6r:>6} "
                  f"{s['rps_median']:8,.0f} {s['cpu_s_median']:9.2f} {s['server_cpu_util_median'] * 100:8.0f}%")
        for k, why in cmp_["unavailable"].items():
            print(f"  unavailable: {k}: {why}")
        for p, pr in cmp_.get("engine_probes", {}).items():
            steps = ", ".join(f"{st['rate']:,}/s -> {st['rps']:,}" for st in pr["steps"])
            print(f"  engine [{p}] max runs at {pr['rate']:,} req/s (3 s probes, asked -> achieved: {steps})")
    for fx in res.get("fixed_rate", []):
        lag = fx["send_lag_ms"] or {}
        print(f"\nfixed rate, perfbench [{fx['path_reported']}] (rep {fx.get('rep', 1)}): target {fx['target_rps']:g} "
              f"req/s for {fx['seconds']:g} s: achieved {fx['achieved_rps']:.1f} ({fx['achieved_vs_target_pct']:+.2f}%, "
              f"within 1%: {fx['within_1pct']}), dropped/failed {fx['dropped_or_failed']} (aborted "
              f"{fx['aborted']}, capped {fx['capped']}), send lag p50/p99/max {lag.get('p50')}/{lag.get('p99')}/"
              f"{lag.get('max')} ms, generator CPU {_pct(fx['cpu_pct_steady'])} of a core steady "
              f"({fx['cpu_pct_whole_process']:.1f}% counting start-up; engine's own steady figure "
              f"{fx['cpu_pct_engine_reported_steady']}%), latency p99 {fx['latency_p99_ms']} ms")
    if res.get("fixed_vs_k6"):
        print_fixed_table(res["fixed_vs_k6"])
    for mx in res.get("max_rps", []):
        print(f"\nmax throughput, one perfbench process [{mx['path']}], cap {cfg['connections']}: "
              f"{mx['rps_median']:,.0f} req/s median [{mx['rps_min']:,.0f} - {mx['rps_max']:,.0f}]")
    if res.get("gzip"):
        import gzip_bench

        gzip_bench.print_gzip(res["gzip"])
    if res.get("soak"):
        sk = res["soak"]
        print(f"\nsoak [{sk['path_reported']}], {sk['rate']:g} req/s for {sk['seconds'] / 60:g} min: RSS slope "
              f"{sk['rss_slope_bytes_per_min']:,.0f} bytes/min after {sk['warmup_s']:g} s warm-up "
              f"({sk['rss_at_warmup_end_mb']:.1f} MB -> {sk['rss_at_end_mb']:.1f} MB, max {sk['rss_max_mb']:.1f} MB)")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def print_fixed_table(fk: dict) -> None:
    """The fixed-rate comparison: perfbench's paths and k6 at the same rate, CPU as whole processes."""
    def f(v, spec: str) -> str:
        return "-" if v is None else format(v, spec)
    print(f"\nfixed rate {fk['rate']:,.0f} req/s for {fk['seconds']:g} s, {fk['repeat']} repetition(s) (median; "
          f"worst for achieved, dropped and lag); CPU = the process tree's user + system time over the run, "
          f"start-up included, as % of one core; vs k6 = over k6's CPU in the same repetition\n")
    print(f"{'generator':26} {'req/s':>8} {'vs target':>9} {'dropped':>7} {'lag p99 ms':>10} {'CPU %':>6} "
          f"{'[min - max]':>13} {'steady %':>8} {'vs k6':>5} {'lat p99 ms':>10}")
    for t in fk["table"]:
        spread = f"[{t['cpu_pct_whole_process_min']:.1f} - {t['cpu_pct_whole_process_max']:.1f}]"
        print(f"{t['generator']:26} {f(t['achieved_rps_median'], ',.1f'):>8} "
              f"{t['achieved_vs_target_pct_worst']:>+8.2f}% {t['dropped_or_failed_max']:>7} "
              f"{f(t['send_lag_p99_ms_max'], '.3f'):>10} {f(t['cpu_pct_whole_process_median'], '.1f'):>6} {spread:>13} "
              f"{f(t['cpu_pct_steady_median'], '.1f'):>8} {f(t['cpu_vs_k6_median'], '.2f'):>5} "
              f"{f(t['latency_p99_ms_median'], '.2f'):>10}")
    for k, why in fk.get("unavailable", {}).items():
        print(f"  unavailable: {k}: {why}")
    lean = next((t for t in fk["table"] if t["path"] == "lean"), None)
    if lean and lean["cpu_vs_k6_median"] is not None:
        lag = lean["send_lag_p99_ms_max"]
        print(f"  bars, lean path: within 1% {abs(lean['achieved_vs_target_pct_worst']) <= 1}, nothing dropped "
              f"{lean['dropped_or_failed_max'] == 0}, send lag p99 < 1 ms {lag is not None and lag < 1.0}, "
              f"CPU <= 1/3 of k6's {lean['cpu_vs_k6_max'] <= 1 / 3} "
              f"(median {lean['cpu_vs_k6_median']:.2f}, max {lean['cpu_vs_k6_max']:.2f})")


def _terminated(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds: the generator running and the private nginx are stopped


def _compile_perfbench() -> None:
    """Write perfbench's bytecode before measuring it. The project is installed editable and this
    environment sets PYTHONDONTWRITEBYTECODE=1, so otherwise every engine process would compile
    the modules it imports (~50 ms of CPU, charged to the generator); a wheel install compiles
    them once at install time, as this does."""
    import compileall

    compileall.compile_dir(str(HERE.parent / "perfbench"), quiet=1)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10, help="load seconds per comparison run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of the comparison (medians reported)")
    ap.add_argument("--peers", default=",".join(CLOSED_PEERS), help=f"closed-loop peers, of {','.join(CLOSED_PEERS)}")
    ap.add_argument("--engine-paths", default="", help="engine HTTP paths to compare (default: all in HTTP_PATHS)")
    ap.add_argument("--engine-max-rate", type=float, default=0,
                    help="open-model rate of the engine's max runs (default: found by 3 s probes, see probe_rate)")
    ap.add_argument("--only", default="compare,fixed,gzip",
                    help="which of compare,fixed,gzip to run (soak: --soak-minutes)")
    ap.add_argument("--fixed-rate", type=float, default=2000)
    ap.add_argument("--fixed-seconds", type=float, default=30)
    ap.add_argument("--fixed-paths", default="", help="engine paths for the fixed-rate test (default: all)")
    ap.add_argument("--fixed-repeat", type=int, default=1,
                    help="repetitions of the fixed-rate test (each: every engine path and k6, rotated order)")
    ap.add_argument("--no-k6-fixed", action="store_true", help="leave k6 out of the fixed-rate test")
    ap.add_argument("--gzip-paths", default="lean", help="engine paths for the gzip comparison (default lean)")
    ap.add_argument("--soak-minutes", type=float, default=0, help="also run the RSS soak test this long")
    ap.add_argument("--target", choices=("nginx", "python"), default="nginx")
    ap.add_argument("--tls", action="store_true",
                    help="nginx serves HTTPS (TLS 1.3, a throwaway CA every client trusts via SSL_CERT_FILE); "
                         "results go to <date>-tls.json")
    ap.add_argument("--out", default="", help="JSON results file (default benchmarks/results/<date>.json)")
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",")}
    _compile_perfbench()

    cpus = os.cpu_count() or 1
    gen_cpu, srv_cpu = (0, 1) if cpus >= 2 and _has_taskset() else (None, None)
    all_paths = peers.http_paths()
    paths = [p for p in ENGINE_PATHS if p in all_paths]  # "auto" picks lean for a plain GET: not run twice
    started = dt.datetime.now().astimezone()
    res: dict = {"started": started.isoformat(timespec="seconds"), "machine": machine(), "versions": peers.versions(),
                 "http_paths": all_paths,
                 "config": {"seconds": args.seconds, "connections": args.connections, "repeat": args.repeat,
                            "generator_cpu": gen_cpu, "server_cpu": srv_cpu, "fixed_rate": args.fixed_rate,
                            "fixed_seconds": args.fixed_seconds, "soak_minutes": args.soak_minutes, "tls": args.tls,
                            "argv": sys.argv[1:]}}
    if args.target == "nginx" and not nginx_binary():
        raise SystemExit("nginx is not installed: run `bash benchmarks/install_peers.sh` (or use --target python)")
    if args.tls and args.target != "nginx":
        raise SystemExit("--tls needs --target nginx (the Python target serves plain HTTP only)")
    server = NginxServer(cpu=srv_cpu, tls=args.tls) if args.target == "nginx" else PythonTarget(srv_cpu)
    with tempfile.TemporaryDirectory(prefix="perfbench-bench-") as d, server as url:
        workdir = Path(d)
        res["target"] = getattr(server, "version", "") + (" (1 worker, keepalive_requests 1e8, access_log off)"
                                                          if args.target == "nginx" else "")
        if args.tls:
            res["target"] += ", HTTPS: TLS 1.2/1.3 with a throwaway CA (trustme), trusted via SSL_CERT_FILE"
        log(f"target {url} (pid {server.pid}); engine HTTP paths: {', '.join(all_paths)}; measuring {', '.join(paths)}")
        if "compare" in only:
            res["comparison"] = comparison(args, url, server, gen_cpu, workdir, all_paths)
            res["max_rps"] = []
            for key, s in res["comparison"]["summary"].items():
                if s["model"] == "open":
                    rps = [r["rps"] for r in res["comparison"]["rows"] if r["key"] == key]
                    res["max_rps"].append({"path": key.removeprefix("engine_"), "rps_median": statistics.median(rps),
                                           "rps_min": min(rps), "rps_max": max(rps), "open_rate": s["open_rate"]})
        fixed_paths = [p for p in args.fixed_paths.split(",") if p in all_paths] if args.fixed_paths else paths
        if "fixed" in only:
            res["fixed_vs_k6"] = fixed_comparison(args, url, server, gen_cpu, workdir, fixed_paths)
            res["fixed_rate"] = [r for r in res["fixed_vs_k6"]["runs"] if r["path"] != "k6"]
        if "gzip" in only:
            if args.target == "nginx" and not args.tls:
                import gzip_bench

                res["gzip"] = gzip_bench.gzip_comparison(args, gen_cpu, srv_cpu, workdir, all_paths)
            else:
                log("gzip: needs --target nginx over plain HTTP; skipped")
        if args.soak_minutes > 0:
            res["soak"] = soak(args, url, server, gen_cpu, workdir, "lean" if "lean" in paths else paths[0])
    res["machine"]["load_avg_at_end"] = os.getloadavg()
    res["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print_report(res)
    tag = "-tls" if args.tls else ""
    out = Path(args.out) if args.out else HERE / "results" / f"{started:%Y-%m-%d}{tag}.json"
    if not args.out and out.exists():
        out = out.with_name(f"{started:%Y-%m-%d-%H%M%S}{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"\nresults written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def _has_taskset() -> bool:
    return subprocess.run(["sh", "-c", "command -v taskset"], capture_output=True).returncode == 0


if __name__ == "__main__":
    main()
