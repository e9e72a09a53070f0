"""Baselines: what a later comparison needs from a run, small enough to commit, under ``data/baselines/NAME/``.

    baselines.save("data/runs/20261121-143012-load_test-9f2c", "main")   # or any importable source
    baselines.load("main")                                                # -> importers.Measurements

A baseline keeps every request's latency, not a summary: exact percentiles and their bootstrap need the
samples, and any summary (a histogram, a t-digest) would decide the resolution of every future comparison
in advance. Per request it keeps endpoint, method, planned send time, latency (exact ns), status and
error kind (``requests.parquet``, zstd): about 8 bytes per request, 25 KB for a 3000-request run. Send
lag and service time are not kept (on reload, start = planned and service time = latency). Above
``max_requests`` it keeps a seeded uniform subsample per endpoint (intervals widen honestly) and records
the true counts for throughput. Sources without samples keep their summary (``summary.parquet``).
``baseline.json`` holds the name, when and from what it was saved, the machine and versions, target and
load shape, duration, counts and the source's notes.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError, RunDirError
from ..importers import Measurements
from ..importers import load as load_source
from ..importers.base import REQUEST_DTYPES
from ..rundir import read_json, utc_now_iso, write_json

FORMAT_VERSION = 1
BASELINE = "baseline.json"
REQUESTS = "requests.parquet"
SUMMARY = "summary.parquet"
DEFAULT_ROOT = Path("data/baselines")
DEFAULT_MAX_REQUESTS = 100_000
KEEP = ["endpoint", "method", "intended_ns", "latency_ns", "status", "error"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def baseline_dir(name: str, root: str | os.PathLike = DEFAULT_ROOT) -> Path:
    if not _NAME.match(name):
        raise ConfigError(f"baseline name {name!r}: use letters, digits, '_', '.', '-' (e.g. main or v1.4)")
    return Path(root) / name


def save(source: str | os.PathLike | Measurements, name: str, *, root: str | os.PathLike = DEFAULT_ROOT,
         max_requests: int = DEFAULT_MAX_REQUESTS, overwrite: bool = False, seed: int = 0) -> Path:
    """Save ``source`` (a run directory, an importable file, or Measurements) as baseline ``name``."""
    m = source if isinstance(source, Measurements) else load_source(source)
    path = baseline_dir(name, root)
    if path.exists():
        if not overwrite:
            raise ConfigError(f"baseline {name!r} already exists in {path.parent}; choose another name or overwrite")
        shutil.rmtree(path)
    tmp = path.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "name": name, "saved_at": utc_now_iso(), "label": m.label,
        "source": m.source, "from": str(m.path) if m.path else None, "duration_s": m.duration_s,
        "meta": m.meta, "rounding": m.rounding, "notes": m.notes,
    }
    if m.requests is not None:
        req = m.requests
        ok = req.group_by("endpoint").agg(pl.col("error").is_null().sum().alias("ok"), pl.len().alias("n"))
        counts = dict(zip(ok["endpoint"], ok["ok"], strict=True))
        info["requests"] = {"kept": req.height, "total": req.height, "per_endpoint": dict(
            zip(ok["endpoint"], ok["n"], strict=True)), "ok": m.counts or counts}
        if req.height > max_requests:
            frac = max_requests / req.height
            req = req.filter(pl.int_range(pl.len()).shuffle(seed=seed).over("endpoint")
                             < (pl.len().over("endpoint") * frac).ceil())
            info["requests"]["kept"] = req.height
            info["notes"] = [*m.notes, f"baseline keeps a uniform subsample of {req.height} of {m.requests.height} "
                                       "requests (seeded); throughput uses the full counts"]
        req.select(KEEP).sort("intended_ns").write_parquet(tmp / REQUESTS, compression="zstd",
                                                          compression_level=19, statistics=False)
    elif m.summary is not None:
        m.summary.write_parquet(tmp / SUMMARY)
    write_json(tmp / BASELINE, info)
    os.replace(tmp, path)
    return path


def is_baseline(path: str | os.PathLike) -> bool:
    return (Path(path) / BASELINE).is_file()


def resolve(spec: str | os.PathLike, root: str | os.PathLike = DEFAULT_ROOT) -> Path | None:
    """The baseline directory ``spec`` names (a path to one, or a name under ``root``), or None."""
    p = Path(spec)
    if is_baseline(p):
        return p
    if not p.exists() and _NAME.match(str(spec)) and is_baseline(Path(root) / str(spec)):
        return Path(root) / str(spec)
    return None


def load(spec: str | os.PathLike, root: str | os.PathLike = DEFAULT_ROOT) -> Measurements:
    """A saved baseline (by name or path) as Measurements."""
    path = resolve(spec, root)
    if path is None:
        known = ", ".join(b["name"] for b in list_baselines(root)) or "none"
        raise ConfigError(f"no baseline {str(spec)!r} (baselines in {root}: {known})")
    info = read_json(path / BASELINE)
    if info.get("format_version") != FORMAT_VERSION:
        raise RunDirError(f"{path}: baseline format_version {info.get('format_version')!r} is not one this "
                          f"perfbench reads ({FORMAT_VERSION}); save the baseline again")
    m = Measurements(label=info["name"], source=info["source"], duration_s=info.get("duration_s"),
                     meta={**info.get("meta", {}), "baseline": {k: info.get(k) for k in ("name", "saved_at", "from")}},
                     rounding=info.get("rounding"), notes=list(info.get("notes", [])), path=path)
    if (path / REQUESTS).is_file():
        kept = pl.read_parquet(path / REQUESTS)
        m.requests = kept.with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("request_id"),
            (pl.col("intended_ns") + pl.col("latency_ns")).alias("end_ns"),
            pl.col("intended_ns").alias("start_ns"), pl.col("latency_ns").alias("service_ns"),
            pl.lit(None, pl.String).alias("error_detail"), pl.lit(0, pl.Int64).alias("bytes"),
            pl.lit(0, pl.Int16).alias("worker"), pl.lit(None, pl.Int32).alias("vu"), pl.lit(0, pl.Int16).alias("stage"),
            pl.lit(0, pl.Int64).alias("wire_bytes"), pl.lit(None, pl.Int64).alias("connect_ns"),
            pl.lit(None, pl.Int64).alias("ttfb_ns"), pl.lit(None, pl.Boolean).alias("reused"),
            pl.lit(0, pl.Int16).alias("redirects"), pl.lit(None, pl.String).alias("final_path"),
            pl.lit(None, pl.String).alias("flow"), pl.lit(None, pl.Int64).alias("flow_run"),
            pl.lit(None, pl.Int32).alias("step"), pl.lit(None, pl.String).alias("user_class"),
        ).select(list(REQUEST_DTYPES)).cast(REQUEST_DTYPES)
        m.counts = (info.get("requests") or {}).get("ok")
    elif (path / SUMMARY).is_file():
        m.summary = pl.read_parquet(path / SUMMARY)
    else:
        raise RunDirError(f"{path}: a baseline without {REQUESTS} or {SUMMARY}; save it again")
    return m


def list_baselines(root: str | os.PathLike = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """Every baseline under ``root``: name, saved_at, source, requests kept, endpoints, machine, size."""
    out = []
    for p in sorted(Path(root).glob(f"*/{BASELINE}")):
        info = read_json(p)
        machine = (info.get("meta") or {}).get("machine") or {}
        req = info.get("requests") or {}
        out.append({"name": info.get("name", p.parent.name), "saved_at": info.get("saved_at"),
                    "source": info.get("source"), "label": info.get("label"), "requests": req.get("kept"),
                    "endpoints": len(req.get("per_endpoint") or {}), "node": machine.get("node"),
                    "bytes": sum(f.stat().st_size for f in p.parent.iterdir() if f.is_file()), "path": str(p.parent)})
    return out
