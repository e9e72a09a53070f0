"""pytest-benchmark's ``--benchmark-json`` files (and the files ``--benchmark-save`` writes).

Each benchmark becomes an endpoint named by its ``name`` (``fullname`` when names repeat). Such a file
holds every round's time in ``stats.data`` (``--benchmark-json`` always; ``--benchmark-save`` with
``--benchmark-save-data``): then each round is a row of the requests shape (latency = the round's time per
iteration), and percentiles get the same bootstrap confidence intervals as a load test. Without ``data``
only the stats remain (min, max, mean, median, quartiles): compared as point estimates. Rounds run one
after another, so there is no throughput to compare. ``machine_info`` and ``commit_info`` are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import Measurements, samples_frame, summary_frame

NO_DATA_NOTE = ("pytest-benchmark file without per-round data (save with --benchmark-save-data or use "
                "--benchmark-json): median, min, max and mean compared as point estimates, no confidence interval")


def read_pytest_benchmark(path: str | Path) -> Measurements:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        benches = doc["benchmarks"]
    except (json.JSONDecodeError, KeyError, TypeError, OSError):
        raise ConfigError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks')") from None
    short = [b.get("name") or b.get("fullname") for b in benches]
    unique = len(set(short)) == len(short)
    names, starts, lats, rows = [], [], [], []
    for b, name in zip(benches, short, strict=True):
        name = name if unique else b.get("fullname") or name
        stats = b.get("stats") or {}
        data = stats.get("data")
        if data:
            t = 0
            for v in data:
                ns = round(float(v) * 1e9)
                names.append(name)
                starts.append(t)
                lats.append(ns)
                t += ns
        rows.append({"endpoint": name, "count": stats.get("rounds"), "errors": 0,
                     "p50_ms": _ms(stats.get("median")), "max_ms": _ms(stats.get("max")),
                     "mean_ms": _ms(stats.get("mean")), "min_ms": _ms(stats.get("min"))})
    m = Measurements(label=path.stem, source="pytest-benchmark", meta=_meta(doc), path=path,
                     notes=["pytest-benchmark: one row per round; latency = time per iteration"])
    if names and len({n for n in names}) == len(rows):
        m.requests = samples_frame(names, starts, lats, method=["CALL"] * len(names))
    else:
        m.summary = summary_frame(rows)
        m.notes.append(NO_DATA_NOTE)
    return m


def _ms(v: Any) -> float | None:
    return None if v is None else float(v) * 1e3


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    mi = doc.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    machine = {"python": mi.get("python_version"), "implementation": mi.get("python_implementation"),
               "os": " ".join(x for x in (mi.get("system"), mi.get("release")) if x) or None,
               "machine": mi.get("machine"), "node": mi.get("node"), "cpu_count": cpu.get("count"),
               "cpu": cpu.get("brand_raw")}
    return {"tool": "pytest-benchmark", "machine": {k: v for k, v in machine.items() if v is not None},
            "versions": {"pytest-benchmark": doc.get("version")}, "commit": doc.get("commit_info") or {},
            "datetime": doc.get("datetime")}


def sniff(path: Path) -> bool:
    try:
        with open(path) as f:
            head = f.read(2048)
    except (OSError, UnicodeDecodeError):
        return False
    return '"machine_info"' in head or '"benchmarks"' in head
