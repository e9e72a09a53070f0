"""Tables for people: one formatter every notebook and report uses (a frame in, HTML out; pure).

:func:`table_html` writes a Polars frame as an HTML table a reader can hand on: strings without
quotes, missing values (null, ``""``, ``[]``) as an em dash, lists as comma-separated text, numbers
with thousands separators, rates and shares as percentages (``error_rate`` 0.012 is ``1.20 %``),
units in the headers (``p95_ms`` is "p95 (ms)"), and long text (SQL, file paths, error details)
wrapped and folded into a ``<details>`` element that holds the whole text: nothing is cut. Each
table carries a link that downloads it as CSV (a ``data:`` URI: no network, no file beside the
report), with the raw values at full precision.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..numbers import number_text

EM_DASH = "\u2014"
# columns shown as percentages (a fraction 0..1 in the frame), recognised by name
PERCENT_NAMES = re.compile(r"(^|_)(error_rate|rate_of_errors|share|db_share|hit_rate|fraction|ratio_pct)(_p\d+(_\d+)?|_mean|_median)?$")
LONG_TEXT = 90  # characters: longer text folds into <details> (its start stays visible)
NAMES = {"rps": "req/s", "ops_per_s": "ops/s"}  # whole column names a reader knows better by another name
UNITS = {"_ms": "ms", "_us": "µs", "_ns": "ns", "_s": "s", "_rps": "req/s", "_bytes": "bytes",
         "_mib": "MiB", "_kib": "KiB", "_kb": "KB"}

STYLE = (
    "<style>.pb-table{border-collapse:collapse;margin:0.4em 0;font-size:0.88em;max-width:100%}"
    ".pb-table th,.pb-table td{border-bottom:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}"
    ".pb-table td.num,.pb-table th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"
    ".pb-table td.text{white-space:pre-wrap;overflow-wrap:break-word;max-width:60em;text-align:left}"
    ".pb-table th.text{text-align:left}"
    ".pb-table details summary{cursor:pointer}.pb-table code{white-space:pre-wrap;overflow-wrap:break-word}"
    ".pb-csv{font-size:0.8em;margin-bottom:1em}</style>"
)


def header(name: str, percent: bool = False) -> str:
    """``p95_ms`` -> ``p95 (ms)``, ``error_rate`` -> ``error rate (%)``, ``offered_rps`` -> ``offered (req/s)``."""
    if name in NAMES:
        return NAMES[name]
    unit = "%" if percent else None
    base = name
    if unit is None:
        for suffix, u in UNITS.items():
            if name.endswith(suffix) and len(name) > len(suffix):
                base, unit = name[: -len(suffix)], u
                break
    if base.startswith("p") and "_" in base and base[1:].replace("_", "").isdigit():
        base = "p" + base[1:].replace("_", ".")  # p99_9 -> p99.9
    text = base.replace("_", " ")
    return f"{text} ({unit})" if unit else text


def is_percent(name: str, percent: Iterable[str] = ()) -> bool:
    return name in set(percent) or bool(PERCENT_NAMES.search(name))


def missing(v: Any) -> bool:
    """None, NaN, an empty string or an empty list: shown as an em dash."""
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    return isinstance(v, list | tuple | dict) and not v


def cell_text(v: Any, percent: bool = False) -> str:
    """A value as the plain text a reader sees (no quotes, no null): the CSV-free rendering."""
    if missing(v):
        return EM_DASH
    if isinstance(v, bool | int | float):
        return number_text(v, percent)
    if isinstance(v, list | tuple):
        return ", ".join(cell_text(x) for x in v if not missing(x)) or EM_DASH
    if isinstance(v, dict):
        return ", ".join(f"{k} {cell_text(x)}" for k, x in v.items() if not missing(x)) or EM_DASH
    return str(v)


def is_id(name: str) -> bool:
    """A column of identifiers (``request_id``, ``example_ids``): shown as they are, without separators."""
    return name == "id" or name.endswith(("_id", "_ids"))


def id_text(v: Any) -> str:
    """An identifier, or a list of them, as written (request 12345 is ``12345``, not ``12,345``)."""
    if missing(v):
        return EM_DASH
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v if not missing(x)) or EM_DASH
    return str(v)


def _cell_html(text: str, numeric: bool, monospace: bool) -> str:
    if numeric:
        return f'<td class="num">{html.escape(text)}</td>'
    body = f"<code>{html.escape(text)}</code>" if monospace else html.escape(text)
    if len(text) > LONG_TEXT:  # folded, never cut: the whole text is inside <details>
        head = text[:LONG_TEXT].rsplit(" ", 1)[0] if " " in text[:LONG_TEXT] else text[:LONG_TEXT]
        body = f"<details><summary>{html.escape(head)} …</summary>{body}</details>"
    return f'<td class="text">{body}</td>'


def csv_text(df: pl.DataFrame) -> str:
    """The frame as CSV with its raw values (lists and structs as text, nothing rounded)."""
    cols = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List | pl.Array):
            cols.append(pl.col(name).cast(pl.List(pl.String)).list.join("; ").alias(name))
        elif isinstance(dtype, pl.Struct | pl.Object):
            cols.append(pl.col(name).map_elements(str, return_dtype=pl.String).alias(name))
        else:
            cols.append(pl.col(name))
    return df.select(cols).write_csv()


def csv_link(df: pl.DataFrame, name: str) -> str:
    """An ``<a download>`` whose ``data:`` URI holds the frame as CSV (works offline, in any browser)."""
    data = base64.b64encode(csv_text(df).encode()).decode()
    fname = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "table"
    return (f'<div class="pb-csv"><a download="{html.escape(fname)}.csv" '
            f'href="data:text/csv;charset=utf-8;base64,{data}">Download as CSV</a> '
            f"({df.height:,} row{'' if df.height == 1 else 's'})</div>")


def table_html(df: pl.DataFrame, *, name: str = "table", percent: Iterable[str] = (),
               monospace: Iterable[str] = ("statement", "sql", "file", "path", "site", "run_dir", "query"),
               max_rows: int = 500, csv: bool = True, style: bool = True) -> str:
    """The frame as an HTML table for people (see the module docstring); ``percent``: columns (fractions)
    to show as %, besides those recognised by name; ``monospace``: columns of code, SQL or paths;
    ``max_rows``: rows shown (the CSV link has every row)."""
    percent = set(percent)
    mono = set(monospace)
    pcols = {c for c in df.columns if is_percent(c, percent)}
    numeric = {c for c, t in df.schema.items() if t.is_numeric() or t == pl.Boolean}
    head = "".join(f'<th class="{"num" if c in numeric else "text"}">{html.escape(header(c, c in pcols))}</th>'
                   for c in df.columns)
    rows = []
    for r in df.head(max_rows).iter_rows():
        cells = []
        for c, v in zip(df.columns, r, strict=True):
            text = id_text(v) if is_id(c) else cell_text(v, c in pcols)
            cells.append(_cell_html(text, c in numeric, c in mono or c.endswith(("_sql", "_path", "_file"))))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="pb-csv">Showing the first {max_rows:,} of {df.height:,} rows; the CSV has them all.</p>'
            if df.height > max_rows else "")
    empty = "" if df.height else f'<tr><td colspan="{max(1, df.width)}">no rows</td></tr>'
    out = (f'<table class="pb-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}{empty}</tbody></table>'
           + more + (csv_link(df, name) if csv else ""))
    return (STYLE if style else "") + out


@dataclass
class Table:
    """A formatted table for a notebook: shows as :func:`table_html` (JupyterLab, nbconvert reports)."""

    df: pl.DataFrame
    name: str = "table"
    percent: tuple[str, ...] = ()

    def html(self) -> str:
        return table_html(self.df, name=self.name, percent=self.percent)

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        return f"<table {self.name}: {self.df.height} rows x {self.df.width} columns>"
