"""k6's outputs: ``--out json=FILE`` (one JSON object per line, ``.gz`` too) and ``--summary-export FILE``.

``--out json`` holds one ``http_req_duration`` point per request (ms, exact), tagged with the request
``name`` (the URL unless the script names it), ``method``, ``status`` and ``expected_response``: every
point becomes a row of the requests shape, the endpoint being the ``name`` tag. The point's ``time`` is
taken as the request's end. ``--summary-export`` holds only aggregates (avg, min, med, max, p(90),
p(95), and p(99) when ``--summary-trend-stats`` asks for it), overall and per submetric such as
``http_req_duration{name:login}``: exact values, but point estimates without a confidence interval.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import polars as pl

from ..errors import ConfigError
from ..scalars import number
from .base import OVERALL, Measurements, http_error_kind, samples_frame, summary_frame

NOTE = "k6: latency measured from the actual send (no coordinated-omission correction)"
SUMMARY_NOTE = "k6 --summary-export: aggregates only, compared as point estimates (no confidence interval)"
_SUB = re.compile(r"^http_req_duration\{(?:name|url):(.+)\}$")


def _open(path: Path):
    return gzip.open(path, "rt") if path.name.endswith(".gz") else open(path)


def read_k6_json(path: str | Path) -> Measurements:
    """Read ``k6 run --out json=FILE``: one row per ``http_req_duration`` point."""
    path = Path(path)
    names, times, durations, methods, statuses, failed = [], [], [], [], [], []
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if '"http_req_duration"' not in line or '"Point"' not in line:
                continue  # other metrics, and the Metric declarations
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{lineno}: not a k6 JSON line ({exc.msg})") from None
            if obj.get("type") != "Point" or obj.get("metric") != "http_req_duration":
                continue
            data, tags = obj["data"], obj["data"].get("tags") or {}
            names.append(tags.get("name") or tags.get("url") or "?")
            times.append(data["time"])
            durations.append(float(data["value"]))
            methods.append(tags.get("method") or "GET")
            status = int(tags["status"]) if str(tags.get("status", "")).isdigit() else None
            statuses.append(status or None)
            failed.append(tags.get("expected_response") == "false" or not status)
    if not names:
        raise ConfigError(f"{path}: no http_req_duration points; is this the file of k6 run --out json=FILE?")
    end_ns = pl.Series(times).str.to_datetime(time_zone="UTC", time_unit="ns").dt.epoch("ns")
    lat_ns = (pl.Series(durations) * 1e6).round().cast(pl.Int64)
    frame = samples_frame(names, end_ns - lat_ns, lat_ns, method=methods, status=statuses,
                          error=[http_error_kind(s, f) for s, f in zip(statuses, failed, strict=True)])
    duration = max(number(frame["end_ns"].max()) / 1e9, 1e-9)
    return Measurements(label=_label(path), source="k6", requests=frame, duration_s=duration,
                        meta={"tool": "k6", "machine": {}, "versions": {}}, notes=[NOTE], path=path)


def read_k6_summary(path: str | Path) -> Measurements:
    """Read ``k6 run --summary-export FILE``: an overall row and one per ``http_req_duration{name:..}``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        metrics = doc["metrics"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a k6 --summary-export file (no 'metrics')") from None
    reqs = metrics.get("http_reqs") or {}
    failed = metrics.get("http_req_failed") or {}
    count = int(reqs.get("count") or 0)
    rate = reqs.get("rate")
    duration = count / rate if rate else None
    rows = []
    for key, m in metrics.items():
        sub = _SUB.match(key)
        if key != "http_req_duration" and not sub:
            continue
        row = {"endpoint": sub.group(1) if sub else OVERALL, "p50_ms": m.get("med"), "p90_ms": m.get("p(90)"),
               "p95_ms": m.get("p(95)"), "p99_ms": m.get("p(99)"), "p99_9_ms": m.get("p(99.9)"),
               "max_ms": m.get("max"), "mean_ms": m.get("avg"), "min_ms": m.get("min")}
        if not sub:
            # http_req_failed is a Rate: "passes" counts the requests that failed (value true)
            row.update(count=count, rps=rate, errors=int(failed.get("passes") or 0))
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no http_req_duration metric; did the script make HTTP requests?")
    return Measurements(label=_label(path), source="k6", summary=summary_frame(rows), duration_s=duration,
                        meta={"tool": "k6", "machine": {}, "versions": {}}, notes=[NOTE, SUMMARY_NOTE],
                        path=path)


def _label(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".json", ".ndjson"):
        name = name.removesuffix(suffix)
    return name


def sniff(path: Path) -> str | None:
    """``json`` for an --out json file, ``summary`` for a --summary-export file, else None."""
    try:
        with _open(path) as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    if head.lstrip().startswith("{") and '"type":"Metric"' in head.replace(" ", "") or '"type":"Point"' in head:
        return "json"
    if '"metrics"' in head and ("http_req" in head or "iterations" in head):
        return "summary"
    return None
