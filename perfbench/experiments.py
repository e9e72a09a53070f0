"""Experiments: parameterized notebooks run by papermill and exported as offline HTML reports.

``run_experiment("load_test", {"rate": 200})``: validates the parameters against the notebook's
``parameters`` cell (unknown names and wrong types are refused before anything runs), executes
it with papermill, keeps the executed notebook in the run directory and writes
``reports/<run-id>.html``, a self-contained file whose charts render with no network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, ExperimentError
from .rundir import new_run_id

TEMPLATE = Path(__file__).parent / "templates" / "offline.html.j2"
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
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "notebooks", here / "_notebooks"):
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

    found = papermill.inspect_notebook(str(path))
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
    run_dir: Path
    notebook: Path
    report: Path


def run_experiment(name: str, parameters: dict[str, Any] | None = None, *, runs_dir: str | os.PathLike = "data/runs",
                   reports_dir: str | os.PathLike = "reports", notebooks_dir: str | os.PathLike | None = None,
                   show_input: bool = False, kernel_name: str = "python3",
                   log: Callable[[str], None] | None = None) -> ExperimentResult:
    """Run experiment ``name`` with ``parameters``; return where its run, notebook and report are."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    log = log or (lambda line: None)
    params = dict(parameters or {})
    path = _notebook_path(name, notebooks_dir)
    declared = notebook_parameters(path)
    validate_parameters(name, params, declared)
    if params.get("run_dir"):
        run_dir = Path(params["run_dir"])
        run_id = run_dir.name
    else:
        run_id = params.pop("run_id", None) or new_run_id(name)
        for key, value in (("run_id", run_id), ("runs_dir", str(runs_dir))):
            if key in declared:
                params[key] = value
        run_dir = Path(runs_dir) / run_id
    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    scratch = reports / f".{run_id}.{name}.ipynb"
    log(f"perfbench: running experiment {name} ({path.name}) as run {run_id}")
    try:
        papermill.execute_notebook(str(path), str(scratch), parameters=params, kernel_name=kernel_name,
                                   progress_bar=False, log_output=False, cwd=os.getcwd(),
                                   kernel_manager_class=_ipc_kernel_manager())
    except PapermillExecutionError as exc:
        kept = _keep_notebook(scratch, run_dir, name)
        raise ExperimentError(f"experiment {name!r} failed in cell {exc.exec_count}: {exc.ename}: "
                              f"{str(exc.evalue).splitlines()[0] if exc.evalue else ''} "
                              f"(executed notebook kept at {kept})") from None
    notebook = _keep_notebook(scratch, run_dir, name)
    report = reports / f"{run_id}.html"
    log(f"perfbench: exporting the report {report}")
    export_html(notebook, report, show_input=show_input)
    return ExperimentResult(name, run_id, run_dir, notebook, report)


def _keep_notebook(scratch: Path, run_dir: Path, name: str) -> Path:
    if not scratch.exists():
        return scratch
    if run_dir.is_dir():
        target = run_dir / f"{name}.ipynb"
        os.replace(scratch, target)
        return target
    return scratch


def export_html(notebook: str | os.PathLike, out: str | os.PathLike, *, show_input: bool = False) -> Path:
    """Export an executed notebook as one self-contained HTML file (no CDN, charts inline SVG)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(template_file=str(TEMPLATE), exclude_input=not show_input,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, out)
    return out
