"""``reports/index.html``: every experiment report with its headline figures, and per experiment a
trend chart of p95 latency and throughput across its runs. One self-contained file, charts as
inline SVG, nothing loaded from the network."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import polars as pl


def collect_runs(runs_dir: str | os.PathLike) -> pl.DataFrame:
    """One row per run directory that came from an experiment (``meta.json`` has ``experiment``)."""
    rows: list[dict[str, Any]] = []
    root = Path(runs_dir)
    for meta_path in sorted(root.glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue  # a directory being written, or not ours: the index lists what it can read
        exp = meta.get("experiment")
        if not exp:
            continue
        summary = {}
        if (meta_path.parent / "summary.json").exists():
            summary = json.loads((meta_path.parent / "summary.json").read_text())
        o = summary.get("overall", {})
        verdict = meta.get("verdict") or {}
        rows.append({
            "experiment": exp.get("name"), "run_id": meta.get("run_id"), "started_at": meta.get("started_at"),
            "target": meta.get("target"), "requests": o.get("count"), "rps": o.get("rps"),
            "p50_ms": (o.get("latency_ms") or {}).get("p50"), "p95_ms": (o.get("latency_ms") or {}).get("p95"),
            "p99_ms": (o.get("latency_ms") or {}).get("p99"), "error_rate": o.get("error_rate"),
            "ok": verdict.get("ok"), "verdict": verdict.get("text"), "report": exp.get("report"),
        })
    schema = {"experiment": pl.String, "run_id": pl.String, "started_at": pl.String, "target": pl.String,
              "requests": pl.Int64, "rps": pl.Float64, "p50_ms": pl.Float64, "p95_ms": pl.Float64,
              "p99_ms": pl.Float64, "error_rate": pl.Float64, "ok": pl.Boolean, "verdict": pl.String,
              "report": pl.String}
    return pl.DataFrame(rows, schema=schema).sort("started_at", descending=True, nulls_last=True)


def collect_bench_runs(runs_dir: str | os.PathLike) -> pl.DataFrame:
    """One row per benchmark of every micro-benchmark run (``meta.json`` kind ``bench``), from its summary.json."""
    rows: list[dict[str, Any]] = []
    for meta_path in sorted(Path(runs_dir).glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("kind") != "bench":
                continue
            summary = json.loads((meta_path.parent / "summary.json").read_text())
        except (OSError, ValueError, AttributeError):
            continue
        for name, b in (summary.get("benchmarks") or {}).items():
            st, sql, mem = b.get("stats") or {}, b.get("sql") or {}, b.get("memory") or {}
            rows.append({"run_id": meta.get("run_id"), "started_at": meta.get("started_at"), "benchmark": name,
                         "median_us": _us(st.get("median_ns")), "iqr_us": _us(st.get("iqr_ns")),
                         "ops": st.get("ops"), "rounds": st.get("rounds"),
                         "sql_per_call": sql.get("statements_per_call"),
                         "mem_peak_kib": None if mem.get("peak_bytes") is None else mem["peak_bytes"] / 1024})
    schema = {"run_id": pl.String, "started_at": pl.String, "benchmark": pl.String, "median_us": pl.Float64,
              "iqr_us": pl.Float64, "ops": pl.Float64, "rounds": pl.Int64, "sql_per_call": pl.Float64,
              "mem_peak_kib": pl.Float64}
    return pl.DataFrame(rows, schema=schema).sort(["started_at", "benchmark"], descending=[True, False],
                                                  nulls_last=True)


def _us(ns: Any) -> float | None:
    return None if ns is None else float(ns) / 1e3


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def write_index(runs_dir: str | os.PathLike = "data/runs", reports_dir: str | os.PathLike = "reports") -> Path:
    """Write ``<reports_dir>/index.html``; returns its path."""
    import vl_convert as vlc

    from . import charts

    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(runs_dir)
    listed = {Path(r).name for r in runs["report"].drop_nulls()}
    others = sorted(p.name for p in reports.glob("*.html") if p.name != "index.html" and p.name not in listed)
    parts = [f"<h1>perfbench reports</h1><p>{runs.height} experiment runs under <code>{html.escape(str(runs_dir))}"
             f"</code>; newest first.</p>"]
    for name in sorted(set(runs["experiment"].drop_nulls())):
        sub = runs.filter(pl.col("experiment") == name)
        parts.append(f"<h2>{html.escape(name)}</h2>")
        with_figures = sub.filter(pl.col("p95_ms").is_not_null())
        if with_figures.height >= 2:
            svg = vlc.vegalite_to_svg(charts.trend(with_figures.sort("started_at")).to_dict())
            parts.append(f'<div class="chart">{svg}</div>')
        parts.append("<table><tr><th>started</th><th>run</th><th>target</th><th>requests</th><th>req/s</th>"
                     "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>errors</th><th>verdict</th></tr>")
        for r in sub.iter_rows(named=True):
            link = html.escape(os.path.relpath(r["report"], reports)) if r["report"] else None
            run = f'<a href="{link}">{html.escape(r["run_id"])}</a>' if link else html.escape(r["run_id"] or "-")
            verdict = "" if r["ok"] is None else ("ok" if r["ok"] else "FAILED")
            vclass = "" if r["ok"] is None else ("ok" if r["ok"] else "bad")
            parts.append(
                f"<tr><td>{html.escape(_fmt(r['started_at'])[:19])}</td><td>{run}</td>"
                f"<td>{html.escape(_fmt(r['target']))}</td><td>{_fmt(r['requests'], ',')}</td>"
                f"<td>{_fmt(r['rps'], ',.1f')}</td><td>{_fmt(r['p50_ms'], '.2f')}</td><td>{_fmt(r['p95_ms'], '.2f')}</td>"
                f"<td>{_fmt(r['p99_ms'], '.2f')}</td>"
                f"<td>{'-' if r['error_rate'] is None else format(r['error_rate'] * 100, '.2f') + '%'}</td>"
                f'<td class="{vclass}" title="{html.escape(r["verdict"] or "")}">{verdict} '
                f"{html.escape((r['verdict'] or '')[:80])}</td></tr>")
        parts.append("</table>")
    bench = collect_bench_runs(runs_dir)
    if bench.height:
        parts.append(f"<h2>Micro-benchmarks</h2><p>{bench['run_id'].n_unique()} runs; compare two with "
                     "<code>perfbench compare BASELINE CURRENT</code>.</p><table><tr><th>started</th><th>run</th>"
                     "<th>benchmark</th><th>median µs</th><th>IQR µs</th><th>ops/s</th><th>rounds</th>"
                     "<th>SQL/call</th><th>peak KiB</th></tr>")
        for r in bench.iter_rows(named=True):
            parts.append(
                f"<tr><td>{html.escape(_fmt(r['started_at'])[:19])}</td><td>{html.escape(r['run_id'] or '-')}</td>"
                f"<td>{html.escape(r['benchmark'])}</td><td>{_fmt(r['median_us'], ',.3f')}</td>"
                f"<td>{_fmt(r['iqr_us'], ',.3f')}</td><td>{_fmt(r['ops'], ',.1f')}</td><td>{_fmt(r['rounds'])}</td>"
                f"<td>{_fmt(r['sql_per_call'], 'g')}</td><td>{_fmt(r['mem_peak_kib'], ',.1f')}</td></tr>")
        parts.append("</table>")
    if others:
        parts.append("<h2>Other reports</h2><ul>" + "".join(
            f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in others) + "</ul>")
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>perfbench reports</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
            "margin:0.5em 0 2em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;"
            "font-size:0.9em}td:nth-child(2),td:nth-child(3),td:last-child,th{text-align:left}"
            ".ok{color:#2e7d32}.bad{color:#c62828;font-weight:bold}.chart svg{max-width:100%}"
            "</style></head><body>" + "".join(parts) + "</body></html>")
    out = reports / "index.html"
    tmp = out.with_name("index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
