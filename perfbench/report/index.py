"""``reports/index.html``: every experiment report, newest first, with its verdict and headline figures,
and trend charts of p95 latency and throughput across comparable runs (the same experiment, target and
parameters). One self-contained file, charts as inline SVG, nothing loaded from the network.

Reports are found by the record ``perfbench experiment`` writes beside each one
(``<run-id>-<name>.json``: experiment, run, parameters, verdict), so reports with no run directory of
their own (a regression comparison) and re-reports of a run are listed too; runs from before those
records are found by their ``meta.json``. The index only reads: no run directory is written into.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl

SCHEMA = {"experiment": pl.String, "run_id": pl.String, "started_at": pl.String, "target": pl.String,
          "requests": pl.Int64, "rps": pl.Float64, "p50_ms": pl.Float64, "p95_ms": pl.Float64,
          "p99_ms": pl.Float64, "error_rate": pl.Float64, "ok": pl.Boolean, "outcome": pl.String,
          "verdict": pl.String, "report": pl.String, "trend_key": pl.String}
# parameters that say where things go, not what was measured: not part of a trend's identity
NOT_IDENTITY = {"run_id", "runs_dir", "run_dir", "target", "baselines_dir"}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a file being written, or not ours: the index lists what it can read
    return data if isinstance(data, dict) else {}


def _target_key(target: Any) -> str:
    """A target without its port when it is loopback (a demo gets a new port each time), else as given."""
    if not isinstance(target, str) or not target:
        return ""
    u = urlsplit(target)
    if u.hostname in ("127.0.0.1", "localhost", "::1"):
        return f"{u.scheme}://{u.hostname}{u.path}"
    return target


def trend_key(experiment: str | None, target: Any, parameters: dict[str, Any] | None) -> str:
    """Runs share a trend only when this is equal: the experiment, the target and every parameter
    that shapes the measurement."""
    params = {k: v for k, v in (parameters or {}).items() if k not in NOT_IDENTITY}
    return json.dumps([experiment, _target_key(target), params], sort_keys=True, default=str)


def _outcome(verdict: dict[str, Any]) -> str | None:
    if not verdict:
        return None
    return verdict.get("outcome") or ("ok" if verdict.get("ok") else "failed")


def _row(name: str | None, meta: dict[str, Any], summary: dict[str, Any], verdict: dict[str, Any],
         report: str | None, parameters: dict[str, Any] | None, started: str | None) -> dict[str, Any]:
    o = summary.get("overall", {})
    lat = o.get("latency_ms") or {}
    target = meta.get("target") or (parameters or {}).get("target")
    return {"experiment": name, "run_id": meta.get("run_id"), "started_at": meta.get("started_at") or started,
            "target": target, "requests": o.get("count"), "rps": o.get("rps"), "p50_ms": lat.get("p50"),
            "p95_ms": lat.get("p95"), "p99_ms": lat.get("p99"), "error_rate": o.get("error_rate"),
            "ok": verdict.get("ok") if verdict else None, "outcome": _outcome(verdict),
            "verdict": verdict.get("text") if verdict else None, "report": report,
            "trend_key": trend_key(name, target, parameters)}


def collect_reports(reports_dir: str | os.PathLike | None, runs_dir: str | os.PathLike | None = None
                    ) -> pl.DataFrame:
    """One row per report: from the records beside the reports, then runs under ``runs_dir`` whose
    ``meta.json`` names a report that has no record. Newest first."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    reports = Path(reports_dir) if reports_dir is not None else None
    for rec_path in sorted(reports.glob("*.json")) if reports is not None else []:
        rec = _read(rec_path)
        if not rec.get("experiment") or not rec.get("report"):
            continue
        run_dir = Path(rec["run_dir"]) if rec.get("run_dir") else None
        meta = _read(run_dir / "meta.json") if run_dir else {}
        summary = _read(run_dir / "summary.json") if run_dir else {}
        meta = meta or {"run_id": rec.get("run_id")}
        report = str(reports / rec["report"])
        seen.add(Path(report).name)
        rows.append(_row(rec["experiment"], meta, summary, rec.get("verdict") or {}, report, rec.get("parameters"),
                         rec.get("created_at")))
    if runs_dir is not None:
        for meta_path in sorted(Path(runs_dir).glob("*/meta.json")):
            meta = _read(meta_path)
            exp = meta.get("experiment")
            if not isinstance(exp, dict) or not exp.get("name"):
                continue
            if exp.get("report") and Path(exp["report"]).name in seen:
                continue
            rows.append(_row(exp.get("name"), meta, _read(meta_path.parent / "summary.json"),
                             meta.get("verdict") or {}, exp.get("report"), exp.get("parameters"), None))
    return pl.DataFrame(rows, schema=SCHEMA).sort("started_at", descending=True, nulls_last=True)


def collect_runs(runs_dir: str | os.PathLike) -> pl.DataFrame:
    """One row per run directory that came from an experiment (``meta.json`` has ``experiment``)."""
    return collect_reports(None, runs_dir)


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
        return "\u2014"
    return format(v, spec) if spec else str(v)


LABEL = {"ok": "ok", "failed": "failed", "inconclusive": "inconclusive", "generator_limit": "generator limit"}
STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
         "margin:0.5em 0 2em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top;"
         "font-size:0.9em}td.l,th{text-align:left}td.verdict{text-align:left;max-width:36em;white-space:normal;"
         "overflow-wrap:break-word}.ok{color:#2e7d32}.failed{color:#c62828;font-weight:bold}"
         ".inconclusive{color:#8d6e00}.generator_limit{color:#1565c0}.chart svg{max-width:100%}"
         "h3{font-size:1em;margin-bottom:0}")


def _trend_title(key: str) -> str:
    exp, target, params = json.loads(key)
    shown = ", ".join(f"{k} {v}" for k, v in params.items()) or "default parameters"
    return f"{exp} on {target or 'no target'}: {shown}"


def write_index(runs_dir: str | os.PathLike = "data/runs", reports_dir: str | os.PathLike = "reports") -> Path:
    """Write ``<reports_dir>/index.html``; returns its path."""
    import vl_convert as vlc

    from . import charts

    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    runs = collect_reports(reports, runs_dir)
    listed = {Path(r).name for r in runs["report"].drop_nulls()}
    others = sorted(p.name for p in reports.glob("*.html") if p.name != "index.html" and p.name not in listed)
    parts = [f"<h1>perfbench reports</h1><p>{runs.height} experiment reports (runs under <code>"
             f"{html.escape(str(runs_dir))}</code>), newest first.</p>",
             "<table><tr><th>started</th><th>experiment</th><th>run</th><th>target</th><th>requests</th>"
             "<th>req/s</th><th>p50 (ms)</th><th>p95 (ms)</th><th>p99 (ms)</th><th>errors (%)</th>"
             "<th>verdict</th></tr>"]
    for r in runs.iter_rows(named=True):
        link = html.escape(os.path.relpath(r["report"], reports)) if r["report"] else None
        run = f'<a href="{link}">{html.escape(r["run_id"] or "report")}</a>' if link else html.escape(
            r["run_id"] or "\u2014")
        outcome = r["outcome"] or ""
        label = LABEL.get(outcome, "")
        verdict = (f'<span class="{outcome}">{label}</span>: ' if label else "") + html.escape(r["verdict"] or "")
        parts.append(
            f"<tr><td class='l'>{html.escape(_fmt(r['started_at'])[:19].replace('T', ' '))}</td>"
            f"<td class='l'>{html.escape(_fmt(r['experiment']))}</td><td class='l'>{run}</td>"
            f"<td class='l'>{html.escape(_fmt(r['target']))}</td><td>{_fmt(r['requests'], ',')}</td>"
            f"<td>{_fmt(r['rps'], ',.1f')}</td><td>{_fmt(r['p50_ms'], ',.2f')}</td><td>{_fmt(r['p95_ms'], ',.2f')}</td>"
            f"<td>{_fmt(r['p99_ms'], ',.2f')}</td>"
            f"<td>{_fmt(None if r['error_rate'] is None else r['error_rate'] * 100, '.2f')}</td>"
            f'<td class="verdict">{verdict or "&mdash;"}</td></tr>')
    parts.append("</table>")
    trends = []
    for key in runs.filter(pl.col("p95_ms").is_not_null())["trend_key"].unique(maintain_order=True):
        same = runs.filter((pl.col("trend_key") == key) & pl.col("p95_ms").is_not_null())
        if same.height >= 2:
            svg = vlc.vegalite_to_svg(charts.trend(same.sort("started_at")).to_dict())
            trends.append(f"<h3>{html.escape(_trend_title(key))}</h3><div class='chart'>{svg}</div>")
    if trends:
        parts.append("<h2>Trends</h2><p>Only across runs of the same experiment, target and parameters.</p>"
                     + "".join(trends))
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
            + STYLE + "</style></head><body>" + "".join(parts) + "</body></html>")
    out = reports / "index.html"
    tmp = out.with_name("index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
