"""How wide the paired p50 intervals of A/B runs are for several unit sizes (requests a side per unit).

    .venv/bin/python benchmarks/ab_noise.py --only-ab --aa 3 --effect 4 --seconds 60   # keeps its run dirs
    .venv/bin/python benchmarks/ab_units.py /tmp/ab_noise-*/runs/ab/*/

For each A/B run directory and endpoint: the Hodges-Lehmann estimate of the per-unit log-ratios of the
median and the half-width of the exact signed-rank interval (95%), the units made as `perfbench ab` makes
them (`perfbench.compare.paired.units`) with each size in ``--sizes``; then, per size, the median and the
maximum half-width over the runs, for ``--endpoint``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfbench.compare import paired as P  # noqa: E402


def intervals(run: Path, sizes: list[int]) -> dict[str, dict[int, tuple[int, float, float] | None]]:
    """Per endpoint and unit size: (units, estimate, half-width), both in log; None under MIN_UNITS units."""
    out: dict[str, dict[int, tuple[int, float, float] | None]] = {}
    for endpoint, er in P.endpoint_rows(pl.scan_parquet(run / "requests.parquet")).items():
        for size in sizes:
            us = P.units(er.pair_counts(), size)
            if len(us) < P.MIN_UNITS:
                out.setdefault(endpoint, {})[size] = None
                continue
            logs = [math.log(P._percentile(er.side(P.CANDIDATE, u), 0.5))
                    - math.log(P._percentile(er.side(P.BASELINE, u), 0.5)) for u in us]
            est, lo, hi = P.hodges_lehmann(logs, 0.95)
            out.setdefault(endpoint, {})[size] = (len(us), est, (hi - lo) / 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="A/B run directories")
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 6, 10, 20, 40])
    p.add_argument("--endpoint", default="posts_naive")
    args = p.parse_args()
    widths: dict[int, list[float]] = {s: [] for s in args.sizes}
    for run in args.runs:
        if not (run / "requests.parquet").exists():
            continue
        print(run.name)
        for endpoint, by_size in intervals(run, args.sizes).items():
            cells = [f"{s}: -" if v is None else f"{s}: {v[0]} units, {v[1]:+.3f} ± {v[2]:.3f}"
                     for s, v in by_size.items()]
            print(f"  {endpoint:12} " + " | ".join(cells))
            for s, v in by_size.items():
                if endpoint == args.endpoint and v is not None:
                    widths[s].append(v[2])
    print(f"\n{args.endpoint}: p50 interval half-width (log) by requests a side per unit")
    for s, ws in widths.items():
        if ws:
            print(f"  {s:4d}: median {statistics.median(ws):.3f}, max {max(ws):.3f} over {len(ws)} runs")


if __name__ == "__main__":
    main()
