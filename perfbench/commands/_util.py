"""Small helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import sys


def positive(kind):
    """An argparse type: a number of ``kind`` that must be > 0."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    return parse


def param_value(text: str):
    """-p values: JSON where it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


SLO_HELP = ("a service level objective, repeatable: [ENDPOINT:]METRIC OP VALUE, e.g. 'p95<300ms', 'errors<1%%', "
            "'posts:p99<=50ms', 'rps>=95'; a broken SLO exits with code 10")


def check_slos(results: list[dict]) -> None:
    """Print SLO verdicts; raise SLOBreached (exit 10) when any is broken."""
    if not results:
        return
    from ..analysis.slo import broken, format_results
    from ..errors import SLOBreached

    print(format_results(results))
    bad = broken(results)
    if bad:
        raise SLOBreached(", ".join(r["slo"] for r in bad))
