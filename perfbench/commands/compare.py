"""perfbench compare."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._util import err

ORDER = 46


def _fraction(text: str) -> float:
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (0.1 or 10%)") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare a run against a baseline: per-endpoint verdicts with confidence intervals",
        description="Compare CURRENT against BASELINE (each a baseline name, a run directory, Locust --csv files, "
                    "a k6 --out json / --summary-export file or a pytest-benchmark JSON file): per endpoint, the "
                    "change of p50, p95, p99 latency and throughput with a confidence interval, and a verdict. "
                    "A regression is a change whose whole interval lies beyond the threshold.",
        epilog="several runs a side: perfbench compare B1 B2 B3 --vs C1 C2 C3 (a t interval over the runs).\n"
               "exit codes: 0 no regression (also inconclusive, e.g. 'inconclusive: noisy'), 10 regression found, "
               "2 bad input, 3 bad run directory.\n"
               "examples:\n  perfbench compare main data/runs/20261121-143012-load_test-9f2c --junit report.xml\n"
               "  perfbench compare main data/runs/RUN --fail-on p95:+10% --fail-on rps:-5% --markdown pr.md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="BASELINE CURRENT (each a baseline name, a run or baseline directory, or a file); with --vs, "
                        "every RUN is a baseline run")
    p.add_argument("--vs", nargs="+", metavar="CURRENT",
                   help="the current runs to judge against the baseline runs given before: several runs a side, "
                        "the drift between runs taken into account")
    p.add_argument("--threshold", type=_fraction, default=None,
                   help="tolerated change: 0.10 or 10%% (default: 10%% with several runs a side; with one run a "
                        "side, the drift measured between runs of one build: see perfbench.compare.sets)")
    p.add_argument("--confidence", type=_fraction, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                   help="a gating rule such as p95:+10%% or rps:-5%%, repeatable; without it every statistic "
                        "gates at --threshold")
    p.add_argument("--min-change-ms", type=float, default=None,
                   help="a latency change must also exceed this many ms (default 1 for HTTP load tests, 0 for "
                        "pytest-benchmark)")
    add_noise_options(p, other_cpu=0.5, steal=0.10)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--baselines-dir", default="data/baselines", help="default data/baselines")
    p.add_argument("--markdown", metavar="FILE", help="also write Markdown (for a pull-request comment)")
    p.add_argument("--json", metavar="FILE", help="also write JSON")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one test case per gating statistic)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text", help="what to print")
    p.set_defaults(func=cmd_compare)


def add_noise_options(p, *, other_cpu: float | None, steal: float | None) -> None:
    """--judge-noisy, --max-other-cpu, --max-steal (compare and ab; perfbench.compare.noise)."""
    g = p.add_argument_group("noisy runs (judged only when the machine was quiet enough)")
    g.add_argument("--judge-noisy", action="store_true",
                   help="judge even when a side's generator saturated or the machine was busy (the output says so)")
    g.add_argument("--max-other-cpu", type=float, default=other_cpu, metavar="CORES",
                   help="other processes' mean CPU above which a run is too noisy to judge"
                        + (f" (default {other_cpu:g} cores)" if other_cpu is not None else " (default: no limit)"))
    g.add_argument("--max-steal", type=_fraction, default=steal, metavar="SHARE",
                   help="hypervisor steal above which a run is too noisy to judge"
                        + (f" (default {steal * 100:g}%%)" if steal is not None else " (default: no limit)"))


def noise_limits(args, base):
    """The NoiseLimits of the command line, starting from ``base`` (COMPARE_LIMITS or AB_LIMITS)."""
    import dataclasses

    from ..errors import ConfigError

    if args.max_other_cpu is not None and not args.max_other_cpu >= 0:
        raise ConfigError(f"--max-other-cpu must be a number of cores >= 0, got {args.max_other_cpu}")
    return dataclasses.replace(base, max_other_cpu=args.max_other_cpu, max_steal=args.max_steal)


def cmd_compare(args) -> int:
    from .. import compare as cmp
    from ..compare.sets import compare_sets
    from ..errors import ConfigError

    rules = cmp.parse_rules(args.fail_on)
    if args.vs:
        base_specs, cur_specs = args.runs, args.vs
    elif len(args.runs) == 2:
        base_specs, cur_specs = args.runs[:1], args.runs[1:]
    else:
        raise ConfigError(f"compare takes BASELINE CURRENT, or BASELINE... --vs CURRENT...; got {len(args.runs)} "
                          "runs and no --vs")
    base = [cmp.load_side(s, args.baselines_dir) for s in base_specs]
    cur = [cmp.load_side(s, args.baselines_dir) for s in cur_specs]
    c = compare_sets(base, cur, threshold=args.threshold, confidence=args.confidence, rules=rules or None,
                     n_boot=args.boot, seed=args.seed, min_change_ms=args.min_change_ms,
                     noise=noise_limits(args, cmp.COMPARE_LIMITS), judge_noisy=args.judge_noisy)
    for path, text in ((args.markdown, cmp.to_markdown), (args.json, cmp.to_json), (args.junit, cmp.to_junit)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text(c))
    print({"text": cmp.to_text, "markdown": cmp.to_markdown, "json": cmp.to_json}[args.format](c))
    for w in c.warnings:
        err(f"perfbench: WARNING: {w}")
    if c.regressions or c.noisy:
        err(f"perfbench: {cmp.headline(c)}")
    return c.exit_code
