"""The small frames the micro-benchmark charts draw (``perfbench.report.charts.bench``): pure Polars functions
over the rounds (``read_rounds``) and the results table (``table`` / ``load_table``)."""

from __future__ import annotations

import json
import math
from typing import Any

import polars as pl

from ..errors import ConfigError
from .stats import MODELS, fit_scaling


def round_histogram(rounds: pl.DataFrame, bins: int = 30) -> pl.DataFrame:
    """Per benchmark, counts of its rounds' time per call in ``bins`` equal bins between its min and max (µs):
    ``benchmark, bin_start_us, bin_end_us, rounds``. A benchmark whose rounds are all equal gets one bin."""
    if bins < 1:
        raise ConfigError(f"bins must be at least 1, got {bins}")
    out = []
    for (name,), g in rounds.group_by("benchmark", maintain_order=True):
        us = (g["per_call_ns"] / 1e3).to_list()
        lo, hi = min(us), max(us)
        n = bins if hi > lo else 1
        width = (hi - lo) / n if hi > lo else max(lo * 1e-3, 1e-6)
        counts = [0] * n
        for v in us:
            counts[min(int((v - lo) / width), n - 1)] += 1
        out += [{"benchmark": str(name), "bin_start_us": lo + i * width, "bin_end_us": lo + (i + 1) * width,
                 "rounds": c} for i, c in enumerate(counts)]
    return pl.DataFrame(out, schema={"benchmark": pl.String, "bin_start_us": pl.Float64, "bin_end_us": pl.Float64,
                                     "rounds": pl.Int64})


def scaling_points(table: pl.DataFrame, group: str | None = None) -> pl.DataFrame:
    """The parametrized rows of a results table with a numeric parameter: ``benchmark, group, n, median_us,
    q1_us, q3_us``. ``group``: the benchmark name without its ``[param]`` suffix (default: every group)."""
    rows = []
    for r in table.iter_rows(named=True):
        if r["param"] is None:
            continue
        try:
            n = json.loads(r["param"])
        except ValueError:
            continue
        if not isinstance(n, int | float) or isinstance(n, bool) or not math.isfinite(n):
            continue
        g = r["benchmark"].split("[", 1)[0]
        if group is None or g == group:
            rows.append({"benchmark": r["benchmark"], "group": g, "n": float(n), "median_us": r["median_us"],
                         "q1_us": r["q1_us"], "q3_us": r["q3_us"]})
    return pl.DataFrame(rows, schema={"benchmark": pl.String, "group": pl.String, "n": pl.Float64,
                                      "median_us": pl.Float64, "q1_us": pl.Float64, "q3_us": pl.Float64}).sort("n")


def scaling_fit(points: pl.DataFrame, samples: int = 50) -> tuple[dict[str, Any], pl.DataFrame]:
    """``fit_scaling`` of one group's medians, and its fitted curve (``n, fit_us``) on a log grid of ``samples``."""
    fit = fit_scaling(points["n"].to_list(), [v * 1e3 for v in points["median_us"].to_list()])
    if fit["model"] is None:
        return fit, pl.DataFrame(schema={"n": pl.Float64, "fit_us": pl.Float64})
    lo, hi = math.log(points["n"].min()), math.log(points["n"].max())  # type: ignore[arg-type]
    grid = [math.exp(lo + (hi - lo) * i / (samples - 1)) for i in range(samples)]
    f, c = MODELS[fit["model"]], fit["fits"][fit["model"]]
    return fit, pl.DataFrame({"n": grid, "fit_us": [(c["a_ns"] + c["b_ns"] * f(n)) / 1e3 for n in grid]})
