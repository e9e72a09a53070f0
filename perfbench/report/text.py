"""Plain-text rendering of a summary for terminals and logs."""

from __future__ import annotations

from ..compare.noise import COMPARE_LIMITS, NoiseLimits, reasons
from ..numbers import number_text


def _ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 10 else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


def endpoint_table_text(summary: dict) -> str:
    """The per-endpoint table (count, req/s, p50/p95/p99/max ms, errors) and the generator's verdict."""
    head = ("endpoint", "count", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors")
    rows = []
    items = list(summary.get("endpoints", {}).items()) + [("ALL", summary.get("overall", {}))]
    for name, b in items:
        lat = b.get("latency_ms", {})
        errs = b.get("errors", 0)
        kinds = ", ".join(f"{k} {v}" for k, v in b.get("errors_by_kind", {}).items())
        rows.append((name, str(b.get("count", 0)), f"{b.get('rps', 0) or 0:.1f}", _ms(lat.get("p50")),
                     _ms(lat.get("p95")), _ms(lat.get("p99")), _ms(lat.get("max")),
                     f"{errs}" + (f" ({kinds})" if kinds else "")))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r):
        return "  ".join(c.ljust(w) if i in (0, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False)))

    out = [line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    gen = summary.get("generator", {})
    if gen:
        lag = gen.get("lag_ms", {})
        out.append("")
        out.append(f"latency is measured from each request's planned send time; send lag p50 "
                   f"{_ms(lag.get('p50'))} ms, p99 {_ms(lag.get('p99'))} ms, max {_ms(lag.get('max'))} ms")
        if gen.get("saturated"):
            out.append("WARNING: the load generator saturated: " + "; ".join(gen.get("saturation_reasons", [])))
    warm = summary.get("warmup")
    if isinstance(warm, dict) and warm.get("until_s") is not None:
        out.append(f"warm-up left out: the first {warm['until_s']:g} s ({warm.get('rows_excluded')} requests, "
                   f"kept in requests.parquet)")
    for note in summary.get("notes", []):
        out.append("note: " + note)
    return "\n".join(out)


def sql_summary_text(summary: dict) -> str:
    """summary.json's ``sql`` (runs with the agent) as a few lines: statements per request by endpoint, the
    N+1 patterns found with the line of code that issued them, what could not be attributed; "" when the run
    had no agent. ``perfbench run --agent`` and ``perfbench summary`` both print it."""
    sql = summary.get("sql")
    if not sql:
        return ""
    head = ("endpoint", "requests", "SQL/req mean", "p50", "p99", "max", "db ms p50")
    rows = [(name, str(e["requests"]), f"{e['per_request_mean']:.1f}", str(e["p50"]), str(e["p99"]), str(e["max"]),
             _ms(e["db_ms_p50"])) for name, e in sql["endpoints"].items()]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = ["", f"server-side SQL (the agent): {sql['statements']} statements, {sql['unattributed']} unattributed"
               + (f", {sql['dropped']} dropped by the agent" if sql.get("dropped") else "")]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in [head, tuple("-" * w for w in widths), *rows]]
    found = sql.get("n_plus_one_patterns", 0)
    out.append(f"N+1: {found} pattern{'s' if found != 1 else ''} (a statement {sql['threshold_n_plus_one']}+ times "
               "in one request)" + (":" if found else ""))
    for f in sql.get("n_plus_one", []):
        text = f["statement"] if len(f["statement"]) <= 80 else f["statement"][:77] + "..."
        site = f.get("call_site")
        where = (f", issued from {site}" + (f" ({f['call_function']})" if f.get("call_function") else "")
                 if site else "")
        out.append(f"  {f['endpoint']}: up to {f['repetitions_max']}x in {f['requests']} requests{where}: {text}")
    return "\n".join(out)


def explain_text(ex: dict) -> str:
    """``perfbench explain``'s view (``perfbench.analysis.explain.explain_path``): the breakdown per endpoint,
    its slowest requests and the slowest 1%, as shares of the latency (gaps: the code between SQL statements),
    then the findings, one line each."""
    table = ex["table"]
    per = ex["requests"]
    timed, total = int(per["timed"].sum()), per.height
    out = [f"where the time went (run {ex['run_id']}): the agent timed {timed} of {total} requests"]
    parts = ("outside", "db", "gaps", "pool", "cache", "downstream", "loop", "gc", "own")
    head = ("endpoint", "requests", "p99 ms", "server ms", *(f"{p} %" for p in parts))
    rows = []
    for r in table.iter_rows(named=True):
        name = r["endpoint"] if r["scope"] == "all" else (f"  {r['endpoint']} p99+" if r["scope"] == "p99"
                                                           else f"{r['scope']}")
        rows.append((name, f"{r['timed']}/{r['requests']}", *(  # written as the report's tables write them
            "-" if r[k] is None else number_text(r[k]) for k in ("latency_p99_ms", "server_ms")),
            *("-" if r[f"{p}_share"] is None else number_text(r[f"{p}_share"] * 100) for p in parts)))
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in [head, tuple("-" * w for w in widths), *rows]]
    out.append("")
    out += [f["text"] for f in ex["findings"]]
    if ex.get("pools"):  # the SQLAlchemy pools the agent sampled (gauges.parquet)
        out += ["", *(f"pool {p['text']}" if not p["exhausted"] else p["text"][0].upper() + p["text"][1:]
                      for p in ex["pools"])]
    return "\n".join(out)


def machine_text(summary: dict, *, label: str = "this run", limits: NoiseLimits = COMPARE_LIMITS,
                 noisy: list[str] | None = None) -> str:
    """The machine's other load during the run (summary.json's ``machine`` block, from machine.parquet) and
    whether the run counts as noisy, by ``perfbench.compare.noise.reasons`` with ``limits`` (what ``compare``
    judges a side by); ``noisy``: the reasons already found (an A/B run's). Empty without the block."""
    m = summary.get("machine")
    if not isinstance(m, dict):
        return ""

    def stat(key: str, fmt: str, unit: str = "") -> str:
        v = m.get(key) or {}
        mean, top = v.get("mean"), v.get("max")
        if not isinstance(mean, int | float):
            return "-"
        return format(mean, fmt) + unit + (f" (max {format(top, fmt)})" if isinstance(top, int | float) else "")

    cpus = f" of {m['cpu_count']}" if m.get("cpu_count") else ""
    out = [f"machine: other processes used {stat('other_cpu_cores', '.2f', f' cores{cpus} on average')}, steal "
           f"{stat('steal_share', '.1%')}, load average {stat('load1', '.1f')}; {m.get('samples', 0)} samples "
           f"in {m.get('file', 'machine.parquet')}"]
    why = reasons(label, summary.get("generator"), m, limits) if noisy is None else noisy
    out.append("noisy: yes: " + "; ".join(why) if why else f"noisy: no (noisy would be: {limits.describe()})")
    return "\n".join(out)
