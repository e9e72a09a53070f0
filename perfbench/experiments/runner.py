"""Experiments: parameterized notebooks run by papermill and exported as offline HTML reports.

``run_experiment("load_test", {"rate": 200})``: validates the parameters against the notebook's
``parameters`` cell (unknown names and wrong types are refused before anything runs), executes
it with papermill, keeps the executed notebook in the run directory (in ``reports/`` when the
experiment has no run of its own, or re-reports an existing run) and writes
``reports/<run-id>-<name>.html``, a self-contained file whose charts render with no network, with
``reports/<run-id>-<name>.json`` beside it (experiment, run, parameters, verdict) for the index.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExperimentError
from ..redaction import SECRETS_ENV, redact_parameters
from ..rundir import new_run_id

TEMPLATE = Path(__file__).parent.parent / "report" / "templates" / "offline.html.j2"
# parameters the runner sets itself; a notebook that takes them gets them
RUNNER_PARAMETERS = ("run_id", "runs_dir")


def _ipc_kernel_manager():
    """A kernel manager on local IPC sockets: the kernel is never reachable over TCP (and says
    nothing about unencrypted TCP on every run)."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"

    return IPCKernelManager


def default_notebooks_dir() -> Path:
    """The project's notebooks/ in a source checkout, else the copy shipped inside the wheel."""
    package = Path(__file__).resolve().parent.parent  # perfbench/
    for candidate in (package.parent / "notebooks", package / "_notebooks"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("no notebooks directory found; pass --notebooks-dir")


def _notebook_path(name: str, notebooks_dir: str | os.PathLike | None) -> Path:
    nb_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    path = nb_dir / f"{name}.ipynb"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in nb_dir.glob("*.ipynb"))) or "none"
        raise ConfigError(f"unknown experiment {name!r}; the experiments in {nb_dir} are: {known}")
    return path


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The notebook's parameters: ``{name: {"type", "default", "help"}}`` from its parameters cell."""
    import papermill

    try:
        found = papermill.inspect_notebook(str(path))
    except Exception as exc:  # noqa: BLE001 - not a notebook papermill can read: bad input, with its reason
        raise ConfigError(f"notebook {str(path)!r}: cannot read its parameters ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None
    return {name: {"type": p["inferred_type_name"], "default": p["default"], "help": p.get("help", "")}
            for name, p in found.items()}


def list_experiments(notebooks_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    nb_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    return {p.stem: notebook_parameters(p) for p in sorted(nb_dir.glob("*.ipynb"))}


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,),
}


def validate_parameters(name: str, given: dict[str, Any], declared: dict[str, dict[str, Any]]) -> None:
    """Refuse unknown parameters and values of the wrong type, all problems at once."""
    problems = []
    for key, value in given.items():
        if key not in declared:
            problems.append(f"unknown parameter {key!r} (known: {', '.join(sorted(declared))})")
            continue
        typ = declared[key]["type"].split("[")[0].replace("Optional", "").strip()
        allowed = _TYPES.get(typ)
        if allowed is None or value is None:
            continue  # None default or an annotation we do not check: anything goes
        if isinstance(value, bool) and typ in ("int", "float"):
            ok = False
        else:
            ok = isinstance(value, allowed)
        if not ok:
            problems.append(f"parameter {key!r} must be {typ} (default {declared[key]['default']}), "
                            f"got {value!r}")
    if problems:
        raise ConfigError(f"experiment {name!r}: bad parameters", problems)


@dataclass
class ExperimentResult:
    name: str
    run_id: str
    run_dir: Path | None  # None: the experiment made no run directory (e.g. a regression comparison)
    notebook: Path
    report: Path
    verdict: dict[str, Any] | None = None  # {"ok": bool, "text": str} when the notebook gave one

    @property
    def ok(self) -> bool:
        return self.verdict is None or bool(self.verdict.get("ok"))


def run_experiment(name: str, parameters: dict[str, Any] | None = None, *, runs_dir: str | os.PathLike = "data/runs",
                   reports_dir: str | os.PathLike = "reports", notebooks_dir: str | os.PathLike | None = None,
                   show_input: bool = False, kernel_name: str = "python3",
                   log: Callable[[str], None] | None = None, static: bool = False) -> ExperimentResult:
    """Run experiment ``name`` with ``parameters``; return where its run, notebook and report are.

    Charts are interactive (Vega, no network); ``static`` makes them SVG images (``nb.setup`` reads
    ``$PERFBENCH_STATIC``, which the kernel inherits)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    log = log or (lambda line: None)
    params = dict(parameters or {})
    path = _notebook_path(name, notebooks_dir)
    declared = notebook_parameters(path)
    validate_parameters(name, params, declared)
    if params.get("run_dir"):
        run_dir = Path(params["run_dir"])
        params["run_dir"] = str(run_dir.resolve())  # the notebook reads it as the caller meant, from anywhere
        if not (run_dir / "meta.json").is_file():
            raise ConfigError(f"experiment {name!r}: parameter 'run_dir': {str(run_dir)!r} is not a run directory "
                              f"(no meta.json there); give a directory under {runs_dir}/, or leave run_dir out "
                              f"to send load")
        from ..analysis.results import Run

        # a corrupt run directory is refused here (RunDirError, exit 3), before any notebook runs or is
        # written into it; a run in progress is analysed as it stands and never written into
        analysed = Run.load(run_dir)
        analysed.summary()  # summary.json too: a damaged one is refused, not analysed
        if analysed.note is not None:
            log(f"perfbench: {analysed.note}; the notebook and verdict stay out of its directory")
        run_id = run_dir.name
        reanalysed = True
    else:
        reanalysed = False
        run_id = params.pop("run_id", None) or new_run_id(name)
        # a runs_dir given as a parameter wins; absolute, so the notebook reads it as the caller meant
        runs_dir = Path(params.get("runs_dir") or runs_dir).resolve()
        for key, value in (("run_id", run_id), ("runs_dir", str(runs_dir))):
            if key in declared:
                params[key] = value
        run_dir = Path(runs_dir) / run_id
    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    scratch = reports / f".{run_id}.{name}.ipynb"
    verdict_file = reports / f".{run_id}.{name}.verdict.json"
    verdict_file.unlink(missing_ok=True)
    log(f"perfbench: running experiment {name} ({path.name}) as run {run_id}")
    from ..report.nb import STATIC_ENV, VERDICT_FILE_ENV

    before = os.environ.get(VERDICT_FILE_ENV)
    before_static = os.environ.get(STATIC_ENV)
    os.environ[VERDICT_FILE_ENV] = str(verdict_file.resolve())  # the kernel inherits the environment
    if static:
        os.environ[STATIC_ENV] = "1"
    # URL credentials and secret query parameters (the target, request paths): papermill saves parameters
    # into the notebook, so it gets them redacted and the real ones travel in the environment (never saved)
    params, secrets = redact_parameters(params)
    before_secrets = os.environ.get(SECRETS_ENV)
    if secrets:
        import json

        os.environ[SECRETS_ENV] = json.dumps(secrets)
    try:
        papermill.execute_notebook(str(path), str(scratch), parameters=params, kernel_name=kernel_name,
                                   progress_bar=False, log_output=False, cwd=os.getcwd(),
                                   kernel_manager_class=_ipc_kernel_manager())
    except PapermillExecutionError as exc:
        from ..rundir import writer_alive

        untouchable = (reanalysed or not (run_dir / "meta.json").is_file() or writer_alive(run_dir)
                       or (run_dir / "requests.arrows").exists())
        kept = _keep_notebook(scratch, reports / f"{run_id}-{name}.ipynb" if untouchable else run_dir, name)
        raise ExperimentError(f"experiment {name!r} failed in cell {exc.exec_count}: {exc.ename}: "
                              f"{str(exc.evalue).splitlines()[0] if exc.evalue else ''} "
                              f"(executed notebook kept at {kept})") from None
    finally:
        for key, value in ((VERDICT_FILE_ENV, before), (SECRETS_ENV, before_secrets), (STATIC_ENV, before_static)):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    verdict = None
    if verdict_file.exists():
        import json

        verdict = json.loads(verdict_file.read_text())
        verdict_file.unlink()
    from ..rundir import writer_alive

    has_run = (run_dir / "meta.json").is_file()
    fresh = not reanalysed and has_run  # a run this experiment has just made
    untouchable = not fresh or writer_alive(run_dir) or (run_dir / "requests.arrows").exists()
    notebook = _keep_notebook(scratch, reports / f"{run_id}-{name}.ipynb" if untouchable else run_dir, name)
    report = reports / f"{run_id}-{name}.html"
    meta = None if untouchable else _record(run_dir, name, params, notebook, report, verdict)
    if meta is None:  # a run re-reported (its meta.json is never rewritten), or no run of its own
        meta = _read_meta(run_dir) | {"verdict": verdict}  # its details name the experiment that made the run
        meta.setdefault("run_id", run_id)
    log(f"perfbench: exporting the report {report}")
    export_html(notebook, report, show_input=show_input, meta=meta)
    _write_record(report, name=name, run_id=run_id, run_dir=run_dir if has_run else None, params=params,
                  verdict=verdict, reanalysed=reanalysed)
    return ExperimentResult(name, run_id, run_dir if has_run else None, notebook, report, verdict)


def _read_meta(run_dir: Path) -> dict[str, Any]:
    """The run's meta.json as it is (read only), or {} when there is none."""
    from ..rundir import RunDir

    try:
        return dict(RunDir(run_dir).meta()) if (run_dir / "meta.json").is_file() else {}
    except Exception:  # noqa: BLE001 - a header without the run's details is still a report
        return {}


def _write_record(report: Path, *, name: str, run_id: str, run_dir: Path | None, params: dict[str, Any],
                  verdict: dict | None, reanalysed: bool) -> Path:
    """``<report>.json`` beside the report: which experiment made it from which run, its parameters and
    verdict. The index reads these, so a report is listed (with its verdict) whether or not it has a run
    directory of its own, and re-reporting a run never needs to write into it."""
    from ..rundir import redact, utc_now_iso, write_json

    out = report.with_suffix(".json")
    write_json(out, {"experiment": name, "run_id": run_id, "run_dir": str(run_dir.resolve()) if run_dir else None,
                     "report": report.name, "parameters": redact(params), "verdict": verdict,
                     "reanalysed": reanalysed, "created_at": utc_now_iso()})
    return out


def _record(run_dir: Path, name: str, params: dict[str, Any], notebook: Path, report: Path,
            verdict: dict | None) -> dict | None:
    """Write the experiment's parameters and outcome into the meta.json of the run it has just made."""
    from ..rundir import RunDir, redact

    rd = RunDir(run_dir)
    outcome = "failed" if verdict and not verdict.get("ok") else (verdict or {}).get("outcome") or "ok"
    changes: dict[str, Any] = {"experiment": {"name": name, "parameters": redact(params), "outcome": outcome,
                                              "notebook": notebook.name, "report": str(report)}}
    if verdict:
        changes["verdict"] = verdict
    return rd.update_meta(**changes)


def _keep_notebook(scratch: Path, run_dir: Path, name: str) -> Path:
    """Move the executed notebook into ``run_dir`` (or to ``run_dir`` itself when that is a file path), as it
    is kept once its kernel is gone (``report.export.settled``: charts, no widget state)."""
    if not scratch.exists():
        return scratch
    _settle(scratch)
    if run_dir.suffix == ".ipynb":
        os.replace(scratch, run_dir)
        return run_dir
    if run_dir.is_dir():
        target = run_dir / f"{name}.ipynb"
        os.replace(scratch, target)
        return target
    return scratch


def _settle(notebook: Path) -> None:
    import nbformat

    from ..report.export import settled

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except (OSError, ValueError):  # not a notebook papermill finished writing: kept as it is
        return
    nbformat.write(settled(nb), str(notebook))


def export_html(notebook: str | os.PathLike, out: str | os.PathLike, *, show_input: bool = False,
                meta: dict[str, Any] | None = None) -> Path:
    """Export an executed notebook as one self-contained HTML file (no CDN): the verdict first, then the
    headline figures, then the run's metadata, without console output (``perfbench.report.export``)."""
    import nbformat
    from nbconvert import HTMLExporter

    from ..report.export import prepare

    nb = prepare(nbformat.read(str(notebook), as_version=4), meta)
    exporter = HTMLExporter(template_file=str(TEMPLATE), exclude_input=not show_input,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, out)
    return out
