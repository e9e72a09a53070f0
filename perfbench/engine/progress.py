"""Live progress: one line per interval, to a terminal or a notebook cell's output."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def format_progress(p: dict[str, Any]) -> str:
    """One line: elapsed/total, planned and completed req/s, p50/p95/p99 of the interval, errors."""

    def ms(v: float | None) -> str:
        return "-" if v is None else (f"{v:.1f}" if v < 100 else f"{v:.0f}")

    errs = ", ".join(f"{k} {v}" for k, v in sorted(p["errors"].items())) or "none"
    head = "done " if p.get("final") else ""
    return (f"{head}{p['elapsed_s']:6.1f}/{p['duration_s']:g}s  sent {p['planned_rps']:7.1f}/s  "
            f"done {p['completed_rps']:7.1f}/s  p50 {ms(p['p50_ms'])} p95 {ms(p['p95_ms'])} "
            f"p99 {ms(p['p99_ms'])} ms  in flight {p['in_flight']}  errors: {errs}  total {p['total']}")


class TerminalProgress:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr

    def __call__(self, p: dict[str, Any]) -> None:
        print(format_progress(p), file=self.stream, flush=True)
