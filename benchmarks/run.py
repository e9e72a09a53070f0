"""perfbench benchmarks: requests per generator CPU-second, side by side in one run.

Starts the fast target (benchmarks/target.py) pinned to CPU 1 when there are 2+ CPUs, runs each
generator in its own process pinned to CPU 0, and measures the generator's own CPU time
(user + system, from the kernel's accounting of the child). Only ratios within one run mean
anything on a shared machine; the table prints them against the naive aiohttp loop.

    python benchmarks/run.py [--seconds 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return (["taskset", "-c", str(cpu)] + cmd) if cpu is not None and _has_taskset() else cmd


def _has_taskset() -> bool:
    return subprocess.run(["which", "taskset"], capture_output=True).returncode == 0


def measure(cmd: list[str]) -> tuple[int, float, float, str]:
    """Run a generator; (successful requests, its CPU seconds, wall seconds, extra output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return int(out[0]), cpu, wall, "\n".join(out[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rates", default="2000,20000", help="engine open-model rates to run, req/s")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    gen_cpu, srv_cpu = (0, 1) if cpus >= 2 else (None, None)
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        port_file = Path(d) / "port"
        srv = subprocess.Popen(pinned([py, str(HERE / "target.py"), str(port_file), "600"], srv_cpu))
        try:
            while not port_file.exists() or not port_file.read_text():
                if srv.poll() is not None:
                    raise SystemExit("benchmark target failed to start")
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            rows = []
            n, cpu, wall, _ = measure(pinned([py, str(HERE / "naive_aiohttp.py"), url + "/", str(args.seconds),
                                              str(args.connections)], gen_cpu))
            rows.append(("naive aiohttp loop (closed, 50 conns)", n, cpu, wall, ""))
            for rate in [float(r) for r in args.rates.split(",")]:
                n, cpu, wall, extra = measure(pinned([py, str(HERE / "engine_run.py"), url, str(args.seconds),
                                                      str(rate), str(args.connections)], gen_cpu))
                rows.append((f"perfbench engine, open {rate:g}/s, cap {args.connections}", n, cpu, wall, extra))
        finally:
            srv.terminate()
            srv.wait(10)
    base = rows[0][1] / rows[0][2]
    print(f"\nmachine: {cpus} CPUs, {os.uname().sysname} {os.uname().release}; {args.seconds:g} s each; "
          f"generator on CPU {gen_cpu}, target on CPU {srv_cpu}\n")
    print(f"{'generator':44} {'requests':>9} {'CPU s':>7} {'wall s':>7} {'req/s':>8} {'req/CPU-s':>10} {'vs naive':>8}")
    for name, n, cpu, wall, _extra in rows:
        print(f"{name:44} {n:9d} {cpu:7.2f} {wall:7.2f} {n / wall:8.0f} {n / cpu:10.0f} {n / cpu / base:8.2f}")
    for name, *_, extra in rows:
        if extra:
            print(f"\n{name}: {extra}")


if __name__ == "__main__":
    main()
