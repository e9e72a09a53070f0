"""A Comparison as text: a terminal table, Markdown for a pull request, JSON, and JUnit XML for CI.

Every format carries the verdict first and every compatibility warning, loudly.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from .core import IMPROVEMENT, INCONCLUSIVE, NO_CHANGE, REGRESSION, THROUGHPUT, Comparison, Row

MARK = {REGRESSION: "REGRESSION", IMPROVEMENT: "improvement", NO_CHANGE: "no change"}
JUDGE_NOISY = "--judge-noisy"


def _val(stat: str, v: float | None) -> str:
    if v is None:
        return "-"
    if stat == THROUGHPUT:
        return f"{v:,.1f}/s"
    if 0 < v < 0.01:  # a micro-benchmark's time per call: µs or ns keep its digits
        return f"{v * 1e3:,.3f} µs" if v >= 0.001 else f"{v * 1e6:,.1f} ns"
    return f"{v:,.3f} ms" if v < 10 else f"{v:,.1f} ms"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{(x - 1) * 100:+.1f}%"


def _interval(r: Row) -> str:
    if r.low is None:
        return "-"
    if r.interval == "point estimate":
        return "(no CI)"
    return f"[{_pct(r.low)}, {_pct(r.high)}]"


def _verdict(r: Row, refused: bool = False) -> str:
    text = MARK[r.verdict]
    if refused and r.verdict != NO_CHANGE:
        return text + " (not judged: noisy)"
    if r.verdict == NO_CHANGE and not r.conclusive:
        text += " (inconclusive)"
    if r.verdict == REGRESSION and not r.gating:
        text += " (not gating)"
    return text


def noise_line(c: Comparison) -> str | None:
    """What made a side noisy, and whether the comparison judged anyway (None: nothing noisy)."""
    if not c.noisy:
        return None
    if c.refused:
        return f"NOISY: {'; '.join(c.noisy)}. Not judged ({JUDGE_NOISY} judges anyway)"
    return f"NOISY, JUDGED ANYWAY ({JUDGE_NOISY}): {'; '.join(c.noisy)}"


def headline(c: Comparison) -> str:
    if c.refused:
        judged = c.judged_regressions
        would = ("; the rows alone would say REGRESSION: "
                 + ", ".join(f"{r.endpoint} {r.stat} {_pct(r.ratio)}" for r in judged)) if judged else ""
        return f"INCONCLUSIVE: noisy: {'; '.join(c.noisy)}{would}"
    if c.regressions:
        where = ", ".join(f"{r.endpoint} {r.stat} {_pct(r.ratio)}" for r in c.regressions)
        return f"REGRESSION: {where} (beyond the threshold with {c.confidence:.0%} confidence)"
    if c.improvements:
        where = ", ".join(f"{r.endpoint} {r.stat} {_pct(r.ratio)}" for r in c.improvements)
        return f"no regression; improvement: {where}"
    return f"no significant change (threshold {c.threshold:.0%}, confidence {c.confidence:.0%})"


def to_text(c: Comparison) -> str:
    """The terminal table: warnings first, the verdict, one line per endpoint and statistic."""
    lines = [f"WARNING: {w}" for w in c.warnings]
    lines += [f"{c.current} ({c.current_source}) against baseline {c.baseline} ({c.baseline_source})",
              headline(c)]
    noise = noise_line(c)
    lines += [noise, ""] if noise else [""]
    head = ("endpoint", "stat", "baseline", "current", "change", f"{c.confidence:.0%} interval", "verdict")
    body = [(r.endpoint, r.stat, _val(r.stat, r.baseline), _val(r.stat, r.current), _pct(r.ratio), _interval(r),
             _verdict(r, c.refused)) for r in c.rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 1, 6) else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines += [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    lines += ["", f"rules: {', '.join(str(r) for r in c.rules)}; {c.method}"]
    lines += [f"note: {n}" for n in c.notes]
    lines += [f"{r.endpoint} {r.stat}: {r.note}" for r in c.rows if r.note]
    lines += [f"WARNING: {w}" for w in c.warnings]
    return "\n".join(lines)


def to_markdown(c: Comparison) -> str:
    """Markdown for a pull-request comment (GitHub alert blocks for warnings)."""
    icon = {REGRESSION: "🔴", IMPROVEMENT: "🟢", NO_CHANGE: "⚪", INCONCLUSIVE: "🟡"}
    out = [f"### perfbench: {icon[c.verdict]} {headline(c)}", ""]
    noise = noise_line(c)
    if noise:
        out += ["> [!CAUTION]", f"> **{noise}**", ""]
    for w in c.warnings:
        out += ["> [!WARNING]", f"> **{w}**", ""]
    out += [f"`{c.current}` ({c.current_source}) against baseline `{c.baseline}` ({c.baseline_source}); "
            f"rules {', '.join(f'`{r}`' for r in c.rules)}.", "",
            f"| endpoint | stat | baseline | current | change | {c.confidence:.0%} interval | verdict |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in c.rows:
        v = _verdict(r, c.refused)
        out.append(f"| {r.endpoint} | {r.stat} | {_val(r.stat, r.baseline)} | {_val(r.stat, r.current)} | "
                   f"{_pct(r.ratio)} | {_interval(r)} | {'**' + v + '**' if r.verdict == REGRESSION else v} |")
    out += ["", "<details><summary>method and notes</summary>", "", f"- {c.method}"]
    out += [f"- {n}" for n in c.notes] + [f"- {r.endpoint} {r.stat}: {r.note}" for r in c.rows if r.note]
    out += ["", "</details>", ""]
    return "\n".join(out)


def to_json(c: Comparison) -> str:
    return json.dumps(c.to_dict(), indent=2, default=str) + "\n"


def to_junit(c: Comparison) -> str:
    """JUnit XML: a test case per gating (endpoint, statistic); a regression is a failure."""
    cases = [r for r in c.rows if r.gating]
    failures = [] if c.refused else [r for r in cases if r.verdict == REGRESSION]
    suite = ET.Element("testsuite", name="perfbench.compare", tests=str(len(cases)), failures=str(len(failures)),
                       errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    for key, value in (("baseline", c.baseline), ("current", c.current), ("threshold", f"{c.threshold:g}"),
                       ("confidence", f"{c.confidence:g}"), ("rules", ", ".join(map(str, c.rules)))):
        ET.SubElement(props, "property", name=key, value=value)
    for w in c.warnings:
        ET.SubElement(props, "property", name="warning", value=w)
    noise = noise_line(c)
    if noise:
        ET.SubElement(props, "property", name="noisy", value=noise)
    for r in cases:
        case = ET.SubElement(suite, "testcase", classname=f"perfbench.compare.{r.endpoint}",
                             name=f"{r.stat} within {'-' if r.stat == THROUGHPUT else '+'}{r.threshold:.0%}")
        detail = (f"{r.endpoint} {r.stat}: {_val(r.stat, r.baseline)} -> {_val(r.stat, r.current)} "
                  f"({_pct(r.ratio)}, {r.interval} {_interval(r)}): {_verdict(r, c.refused)}")
        if r.verdict == REGRESSION and not c.refused:
            ET.SubElement(case, "failure", message=detail, type="regression").text = detail + (
                f"\n{r.note}" if r.note else "")
        else:
            ET.SubElement(case, "system-out").text = detail + (f"\n{r.note}" if r.note else "")
    if c.warnings:
        ET.SubElement(suite, "system-err").text = "\n".join(f"WARNING: {w}" for w in c.warnings)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def table_frame(c: Comparison):
    """The comparison as a report's table shows it (and its headline reads it): per endpoint and statistic the
    baseline and current values (ms, or req/s for throughput), the change and its interval as fractions of the
    baseline, the verdict, how the interval was found and a note. Empty (no columns) without rows."""
    import polars as pl

    frame = c.to_frame()
    if not frame.height:
        return frame
    return frame.select("endpoint", "stat", "baseline", "current", "change", (pl.col("low") - 1).alias("change_low"),
                        (pl.col("high") - 1).alias("change_high"), "verdict", "interval", "note")
