"""gzip responses: perfbench's lean path against the naive aiohttp loop (which decodes), in one run.

A private nginx (benchmarks/nginx_server.py, ``gzip=True``) compresses its JSON body for every
client that accepts gzip (``gzip on; gzip_types application/json; gzip_min_length 1``: the 11-byte
body goes out as 31 bytes of gzip). The naive aiohttp loop sends aiohttp's default
``Accept-Encoding: gzip, deflate`` and reads each body decompressed (aiohttp's default). Each
generator runs for the same seconds, in rotated order, REPEAT times; req per CPU-second and the
ratio within each repetition, as benchmarks/run.py measures them.

What the lean path does with compression is not assumed, it is measured first against a small
probe server (a thread here, on 127.0.0.1): which ``Accept-Encoding`` it sends, whether the answers
came compressed, and the byte columns of its rows. The engine runs with ``Accept-Encoding: gzip``
set by the scenario; if the lean path refuses that header (a lean path that does not decode), it
runs with its own default, and the report says it was measured on uncompressed responses. The rows
of every engine run are kept and every column whose name holds ``bytes`` (``bytes``, and wire or
decoded bytes when the engine records them) is summarised, so what was measured is on record.

    python benchmarks/gzip_bench.py                  # 3 x 10 s each, ~2 min
    python benchmarks/gzip_bench.py --seconds 3 --repeat 1
    python benchmarks/run.py --only gzip             # the same, as a stage of the whole benchmark
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402
import run  # noqa: E402
from nginx_server import BODY, NginxServer  # noqa: E402

GZIP_HEADERS = {"Accept-Encoding": "gzip"}


class _Probe(BaseHTTPRequestHandler):
    """Answers GET / with the benchmark's body, gzipped when the request accepts gzip; notes each
    request's Accept-Encoding."""

    protocol_version = "HTTP/1.1"
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        ae = self.headers.get("Accept-Encoding")
        self.seen.append(ae)
        zipped = ae is not None and "gzip" in ae.lower()
        body = gzip.compress(BODY) if zipped else BODY
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if zipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def byte_columns(run_dir: str | None) -> dict:
    """min / median / max of every column of requests.parquet whose name holds 'bytes'."""
    if not run_dir:
        return {}
    import polars as pl

    lf = pl.scan_parquet(Path(run_dir) / "requests.parquet")
    cols = [c for c in lf.collect_schema().names() if "bytes" in c]
    df = lf.select(cols).collect()
    return {c: {"min": df[c].min(), "median": df[c].median(), "max": df[c].max(), "nulls": df[c].null_count()}
            for c in cols}


def engine_peer(url: str, seconds: float, rate: float, cap: int, path: str, headers: dict | None,
                keep: Path | None) -> peers.Peer:
    """engine_run.py with the scenario's ``headers``; its run directory kept in ``keep`` (if given)."""
    p = peers.engine(url, seconds, rate, cap, path)
    p.env = {**({"ENGINE_RUN_KEEP": str(keep)} if keep else {}),
             **({"ENGINE_RUN_HEADERS": json.dumps(headers)} if headers else {})}
    return p


def probe_engine(path: str, workdir: Path, gen_cpu) -> dict:
    """What the engine's ``path`` sends and records against a server that gzips on request: first
    with ``Accept-Encoding: gzip`` set by the scenario, then (if refused) with the path's default."""
    _Probe.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    out: dict = {"path": path}
    try:
        for label, headers in (("Accept-Encoding: gzip set by the scenario", GZIP_HEADERS),
                               ("the path's default headers", None)):
            keep = workdir / f"probe-{path}-{'gzip' if headers else 'default'}"
            keep.mkdir()
            _Probe.seen = []
            try:
                r = run.measure(engine_peer(url, 1.0, 100, 4, path, headers, keep), gen_cpu, _NoServer(), 1.0, workdir)
            except RuntimeError as e:
                out.setdefault("refused", []).append({"with": label, "error": str(e)[-400:]})
                shutil.rmtree(keep, ignore_errors=True)
                continue
            seen = list(_Probe.seen)
            out.update({
                "headers": headers, "with": label, "requests": r["ok"] + r["errors"], "errors": r["errors"],
                "accept_encoding_sent": sorted({str(s) for s in seen}),
                "answered_gzip": sum(1 for s in seen if s and "gzip" in s.lower()),
                "body_bytes": len(BODY), "gzip_bytes": len(gzip.compress(BODY)),
                "byte_columns": byte_columns(r["extra"].get("run_dir")),
            })
            shutil.rmtree(keep, ignore_errors=True)
            return out
    finally:
        server.shutdown()
        server.server_close()
    return out


class _NoServer:
    def worker_pids(self) -> list[int]:
        return []


def describe(probe: dict) -> str:
    """One honest sentence: what the engine's numbers in the gzip run are a measure of."""
    if "headers" not in probe:
        return f"the {probe['path']} path did not run against the probe server: {probe.get('refused')}"
    cols = probe["byte_columns"]
    recorded = ", ".join(f"{c} {v['median']:g}" for c, v in cols.items())
    refused = (f"it refused Accept-Encoding: gzip ({probe['refused'][0]['error'][-160:].strip()}); "
               if probe.get("refused") else "")
    if probe["answered_gzip"] == 0:
        return (f"{refused}run with {probe['with']}, the {probe['path']} path sent Accept-Encoding "
                f"{probe['accept_encoding_sent']}: the server answered uncompressed, so its gzip-run figures are for "
                f"uncompressed responses (no decoding); rows record {recorded} (body {probe['body_bytes']} B)")
    decoded = any(v["median"] == probe["body_bytes"] for v in cols.values())
    wire = any(v["median"] == probe["gzip_bytes"] for v in cols.values())
    return (f"{refused}run with {probe['with']}, the {probe['path']} path sent Accept-Encoding "
            f"{probe['accept_encoding_sent']} and got {probe['answered_gzip']} gzip responses; rows record {recorded} "
            f"(body {probe['body_bytes']} B, gzip {probe['gzip_bytes']} B on the wire): "
            + ("decoded" if decoded else "NOT decoded") + (", wire bytes recorded" if wire else ""))


def gzip_comparison(args, gen_cpu, srv_cpu, workdir: Path, paths: list[str]) -> dict:
    """The lean path (and ``--gzip-paths``) against the naive loop on nginx with gzip on."""
    engine_paths = [p for p in (args.gzip_paths.split(",") if args.gzip_paths else ["lean"]) if p in paths]
    probes = {p: probe_engine(p, workdir, gen_cpu) for p in engine_paths}
    for p, pr in probes.items():
        run.log(f"gzip probe [{p}]: {describe(pr)}")
    rows, rates, steps = [], {}, {}
    server = NginxServer(cpu=srv_cpu, gzip=True)
    with server as url:
        for p in engine_paths:
            headers = probes[p].get("headers")
            if "headers" not in probes[p]:
                continue
            run.log(f"gzip: probing the engine's capacity on the {p} path (3 s)...")
            probed = run.probe_rate(url, p, args.connections, gen_cpu, server, workdir,
                                    engine=lambda u, s, r, c, p, h=headers: engine_peer(u, s, r, c, p, h, None))
            rates[p], steps[p] = probed["rate"], probed["steps"]
            run.log("  probe steps (asked -> achieved): "
                    + ", ".join(f"{st['rate']:,}/s -> {st['rps']:,}" for st in probed["steps"]))
        jobs = [("naive_aiohttp", "naive aiohttp loop (uvloop), decoding",
                 lambda keep: peers.naive(url, args.seconds, args.connections))]
        for p, rate in rates.items():
            jobs.append((f"engine_{p}", f"perfbench engine [{p}] open {rate:,}/s",
                         lambda keep, p=p, rate=rate: engine_peer(url, args.seconds, rate, args.connections, p,
                                                                  probes[p].get("headers"), keep)))
        for rep in range(args.repeat):
            for key, name, make in jobs[rep % len(jobs):] + jobs[:rep % len(jobs)]:
                keep = workdir / f"gzip-{key}-{rep}"
                keep.mkdir()
                run.log(f"gzip rep {rep + 1}/{args.repeat}: {name} ...")
                try:
                    r = run.measure(make(keep), gen_cpu, server, args.seconds, workdir)
                except (RuntimeError, ValueError, KeyError, json.JSONDecodeError) as e:
                    run.log(f"  failed: {e}")
                    continue
                r.pop("samples")
                r["byte_columns"] = byte_columns(r["extra"].get("run_dir"))
                shutil.rmtree(keep, ignore_errors=True)
                rows.append({"rep": rep + 1, "key": key, "name": name, **r})
                run.log(f"  {r['ok']} ok, {r['errors']} errors, {r['per_cpu_s']:.0f} req/CPU-s")
    naive = {r["rep"]: r["per_cpu_s"] for r in rows if r["key"] == "naive_aiohttp"}
    summary = {}
    for key in dict.fromkeys(r["key"] for r in rows):
        rs = [r for r in rows if r["key"] == key]
        ratios = [r["per_cpu_s"] / naive[r["rep"]] for r in rs if naive.get(r["rep"])]
        summary[key] = {"name": rs[0]["name"], "req_per_cpu_s_median": statistics.median(r["per_cpu_s"] for r in rs),
                        "req_per_cpu_s_min": min(r["per_cpu_s"] for r in rs),
                        "req_per_cpu_s_max": max(r["per_cpu_s"] for r in rs),
                        "vs_naive_median": statistics.median(ratios) if ratios else None,
                        "vs_naive_min": min(ratios) if ratios else None, "vs_naive_max": max(ratios) if ratios else None,
                        "rps_median": statistics.median(r["rps"] for r in rs), "errors": sum(r["errors"] for r in rs),
                        "byte_columns": rs[-1]["byte_columns"]}
    return {"body_bytes": len(BODY), "gzip_bytes": len(gzip.compress(BODY)), "seconds": args.seconds,
            "repeat": args.repeat, "probes": probes, "what_was_measured": {p: describe(pr) for p, pr in probes.items()},
            "rates": rates, "probe_steps": steps, "rows": rows, "summary": summary}


def print_gzip(g: dict) -> None:
    print(f"\ngzip: nginx gzip on (level 1), the {g['body_bytes']}-byte JSON body sent as {g['gzip_bytes']} bytes of gzip "
          f"to a client that accepts it; {g['seconds']:g} s per run, {g['repeat']} repetition(s), median [min - max]\n")
    print(f"{'generator':44} {'req/CPU-s':>10} {'[min - max]':>19} {'vs naive':>8} {'req/s':>8}  bytes recorded")
    for s in sorted(g["summary"].values(), key=lambda s: -s["req_per_cpu_s_median"]):
        spread = f"[{s['req_per_cpu_s_min']:,.0f} - {s['req_per_cpu_s_max']:,.0f}]"
        ratio = "-" if s["vs_naive_median"] is None else f"{s['vs_naive_median']:.2f}"
        cols = ", ".join(f"{c} {v['median']:g}" for c, v in s["byte_columns"].items()) or "-"
        print(f"{s['name']:44} {s['req_per_cpu_s_median']:10,.0f} {spread:>19} {ratio:>8} {s['rps_median']:8,.0f}  {cols}")
    for p, text in g["what_was_measured"].items():
        print(f"  [{p}] {text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--gzip-paths", default="lean", help="engine HTTP paths to run (default lean)")
    ap.add_argument("--out", default="", help="also write the results as JSON here")
    args = ap.parse_args()
    gen_cpu, srv_cpu = (0, 1) if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else (None, None)
    run._compile_perfbench()
    with tempfile.TemporaryDirectory(prefix="perfbench-bench-") as d:
        res = gzip_comparison(args, gen_cpu, srv_cpu, Path(d), peers.http_paths())
    print_gzip(res)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
