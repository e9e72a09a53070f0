"""The results table as text, as pytest-benchmark users read it (times in one unit for the whole table)."""

from __future__ import annotations

import polars as pl

TIME_COLUMNS = ("min_us", "max_us", "mean_us", "stddev_us", "median_us", "iqr_us")
UNITS = (("s", 1e6), ("ms", 1e3), ("us", 1.0), ("ns", 1e-3))


def unit_for(min_us: float) -> tuple[str, float]:
    """The largest unit in which the fastest benchmark's minimum is at least 1."""
    for name, scale in UNITS:
        if min_us >= scale:
            return name, scale
    return UNITS[-1]


def to_text(table: pl.DataFrame, title: str = "benchmarks") -> str:
    """A fixed-width table of ``perfbench.bench.store.table``'s frame; SQL and memory columns when measured."""
    if table.height == 0:
        return f"{title}: none ran"
    unit, scale = unit_for(float(table["min_us"].min()))  # type: ignore[arg-type]
    head = [f"Name (time in {unit})", "Min", "Max", "Mean", "StdDev", "Median", "IQR", "Outliers", "OPS",
            "Rounds", "Loops"]
    sql = table["sql_per_call"].is_not_null().any()
    mem = table["mem_peak_kib"].is_not_null().any()
    if sql:
        head += ["SQL/call", "SQL ms", "N+1"]
    if mem:
        head += ["Peak KiB", "Net KiB"]
    body = []
    for r in table.iter_rows(named=True):
        row = [r["benchmark"], *(f"{r[c] / scale:,.4f}" for c in TIME_COLUMNS), str(r["outliers"]),
               f"{r['ops']:,.1f}", str(r["rounds"]), str(r["loops"])]
        if sql:
            row += ["-" if r["sql_per_call"] is None else f"{r['sql_per_call']:g}",
                    "-" if r["sql_ms_per_call"] is None else f"{r['sql_ms_per_call']:.3f}",
                    "-" if r["n_plus_one"] is None else str(r["n_plus_one"])]
        if mem:
            row += ["-" if r["mem_peak_kib"] is None else f"{r['mem_peak_kib']:,.1f}",
                    "-" if r["mem_net_kib"] is None else f"{r['mem_net_kib']:,.1f}"]
        body.append(row)
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    line = "-" * (sum(widths) + 2 * (len(widths) - 1))
    fmt = [lambda v, w: v.ljust(w)] + [lambda v, w: v.rjust(w)] * (len(head) - 1)
    out = [f" {title}: {table.height} ".center(len(line), "-"),
           "  ".join(f(v, w) for f, v, w in zip(fmt, head, widths, strict=True)), line]
    out += ["  ".join(f(v, w) for f, v, w in zip(fmt, row, widths, strict=True)) for row in body]
    out.append(line)
    out.append("Outliers: rounds beyond 1.5 IQR of the quartiles; OPS: calls per second (1 / mean)"
               + ("; SQL and memory per call measured on separate calls after the timed rounds" if sql or mem else ""))
    return "\n".join(out)


def table_frame(table: pl.DataFrame) -> pl.DataFrame:
    """``to_text``'s table as a frame for a report's table formatter: the times in the unit of the fastest
    minimum (columns ``min_ns`` ... or ``min_us`` ..., the unit in the name), ops/s, rounds, loops, and the SQL
    and memory columns only when measured."""
    if table.height == 0:
        return table.select("benchmark")
    unit, scale = unit_for(float(table["min_us"].min()))  # type: ignore[arg-type]
    times = [(pl.col(c) / scale).alias(c[:-len("us")].replace("iqr", "IQR") + unit) for c in TIME_COLUMNS]
    rest = [c for c in ("outliers", "ops", "rounds", "loops", "sql_per_call", "sql_ms_per_call", "n_plus_one",
                        "mem_peak_kib", "mem_net_kib") if table[c].is_not_null().any()]
    return table.select("benchmark", *times, *rest).rename({"ops": "ops_per_s"})
