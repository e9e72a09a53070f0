"""perfbench experiment."""

from __future__ import annotations

import argparse
import os

from ._util import err, param_value

ORDER = 30


def register(sub) -> None:
    _add_experiment(sub)
    _add_experiments_list(sub)


def _add_experiment(sub) -> None:
    p = sub.add_parser(
        "experiment", help="run an experiment notebook with papermill and export its HTML report",
        description="Execute notebooks/<NAME>.ipynb with papermill (its `parameters` cell overridden by -p), "
                    "keep the executed notebook in the run directory, record the parameters and outcome in "
                    "its meta.json and export an offline, self-contained HTML report to "
                    "reports/<run-id>-<NAME>.html. Exits with 10 when the notebook's verdict fails (a broken "
                    "SLO, a regression, a leak...), so scheduled runs can gate on it.",
        epilog="example:\n  perfbench experiment load_test -p target http://127.0.0.1:8080 -p rate 200 -p duration 20",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="experiment name: a notebook in notebooks/ (e.g. load_test); "
                                "`perfbench experiment --list` shows them")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (VALUE parsed as JSON when it can be)")
    p.add_argument("--runs-dir", default="data/runs", help="default data/runs")
    p.add_argument("--reports-dir", default="reports", help="default reports")
    p.add_argument("--notebooks-dir", help="where the experiment notebooks are (default: the project's notebooks/)")
    p.add_argument("--show-input", action="store_true", help="keep code cells in the HTML report")
    p.add_argument("--static", action="store_true",
                   help="charts as static SVG images (for print and e-mail) instead of interactive ones; "
                        "same as PERFBENCH_STATIC=1")
    p.set_defaults(func=cmd_experiment)


def cmd_experiment(args) -> int:
    from ..experiments.runner import run_experiment

    params = {k: param_value(v) for k, v in args.parameter}
    _check(args, params)
    result = run_experiment(args.name, params, runs_dir=args.runs_dir, reports_dir=args.reports_dir,
                            notebooks_dir=args.notebooks_dir, show_input=args.show_input, log=err,
                            static=args.static)
    print(f"run directory: {result.run_dir if result.run_dir is not None else 'none (this experiment reads existing runs)'}")
    print(f"notebook:      {result.notebook}")
    print(f"report:        {result.report}")
    if result.verdict is not None:
        label = {"inconclusive": "inconclusive", "generator_limit": "generator limit"}.get(
            result.verdict.get("outcome", ""), "ok" if result.ok else "FAILED")
        print(f"verdict:       {label}: {result.verdict.get('text')}")
    return 0 if result.ok else 10


def _add_experiments_list(sub) -> None:
    p = sub.add_parser("experiments", help="list the experiment notebooks and their parameters",
                       description="List the experiment notebooks and the parameters each one takes.")
    p.add_argument("--notebooks-dir", help="default: the project's notebooks/")
    p.set_defaults(func=cmd_experiments)


def cmd_experiments(args) -> int:
    from ..errors import ConfigError
    from ..experiments.runner import list_experiments

    if args.notebooks_dir is not None and not os.path.isdir(args.notebooks_dir):
        raise ConfigError(f"--notebooks-dir {args.notebooks_dir!r} is not a directory")
    for name, params in list_experiments(args.notebooks_dir).items():
        print(name)
        for pname, info in params.items():
            print(f"    {pname} = {info['default']}    ({info['type']}) {info['help']}".rstrip())
    return 0


def _check(args, params: dict) -> None:
    """What can be checked before a kernel starts, every problem at once: the directories, and the
    parameters most notebooks share (a target, SLOs, a rate and a duration)."""
    import math

    from ..analysis.slo import parse_all
    from ..safety import check_target
    from ._util import Problems, writable_dir_problem

    problems = Problems()
    if args.notebooks_dir is not None and not os.path.isdir(args.notebooks_dir):
        problems.add(f"--notebooks-dir {args.notebooks_dir!r} is not a directory")
    problems.add(writable_dir_problem(args.reports_dir, "--reports-dir"))
    if not params.get("run_dir"):
        runs_dir = params.get("runs_dir")
        problems.add(writable_dir_problem(runs_dir if isinstance(runs_dir, str) and runs_dir else args.runs_dir,
                                          "--runs-dir"))
    target = params.get("target")
    if isinstance(target, str) and target:
        problems.attempt(check_target, target)
    slos = params.get("slos")
    if isinstance(slos, list):
        if all(isinstance(s, str) for s in slos):
            problems.attempt(parse_all, slos)
        else:
            problems.add(f"parameter 'slos': a list of SLO texts such as [\"p95<300ms\"], got {slos!r:.80}")
    for name in ("rate", "duration"):
        value = params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and not (math.isfinite(value) and value > 0):
            problems.add(f"parameter {name!r}: a finite number > 0, got {value!r}")
    problems.raise_any()
