"""The layout's rules, read from the sources: no import cycle, and each layer imports only downward.

The graph is built with ``ast`` from every ``import`` in ``perfbench/``, function-level imports
included (a lazy import is still a dependency). ``from pkg import name`` counts as an import of
``pkg.name`` when that is a module, else of ``pkg``. A package's ``__init__`` is not implied by
importing one of its submodules (that is Python's mechanics, not a dependency of the code).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "perfbench"

# The layers, bottom up (docs/design.md draws them). A module imports from its own layer or below, never
# from above: what measures never depends on what reports, what runs inside a service never on the engine.
LAYERS = [
    {"errors", "version", "wire", "safety", "sqltext", "scalars", "fields", "redaction",
     "numbers", "stops"},  # shared vocabulary
    {"shapes", "scenario", "scenario_toml", "scenario_flows", "scenario_flows_toml", "scenario_toml_parts", "scenario_hooks", "rundir"},           # plans, what to send, the run directory
    {"analysis", "importers", "compare", "report", "agent", "service"},  # read runs; inside the service; processes
    {"engine", "profilers", "demo", "bench"},                      # one process's load; watchers; the demo target;
                                                                   # micro-benchmarks of functions
    {"distributed", "load", "scenarios"},                          # where the load runs; named scenarios
    {"experiments"},                                               # drivers of several runs and notebooks
    {"commands", "cli", "__main__", ""},                           # the CLI and the public API (perfbench/__init__)
]

# package -> what it must never import (directly or through a function-level import)
FORBIDDEN = {
    "perfbench.engine": ("perfbench.distributed", "perfbench.demo", "perfbench.report", "perfbench.experiments",
                         "perfbench.profilers", "perfbench.agent", "perfbench.commands", "perfbench.cli",
                         "perfbench.load"),
    "perfbench.agent": ("perfbench.engine", "perfbench.analysis", "perfbench.report", "perfbench.demo",
                        "perfbench.experiments", "perfbench.commands", "perfbench.distributed", "perfbench.load"),
    "perfbench.analysis": ("perfbench.engine", "perfbench.report", "perfbench.experiments", "perfbench.commands",
                           "perfbench.demo", "perfbench.load", "perfbench.distributed"),
    "perfbench.report": ("perfbench.engine", "perfbench.experiments", "perfbench.commands", "perfbench.demo",
                         "perfbench.load", "perfbench.distributed"),
    "perfbench.profilers": ("perfbench.experiments", "perfbench.commands", "perfbench.demo", "perfbench.report",
                            "perfbench.load", "perfbench.distributed"),
    "perfbench.bench": ("perfbench.engine", "perfbench.experiments", "perfbench.commands", "perfbench.cli",
                        "perfbench.load", "perfbench.distributed", "perfbench.demo"),
    "perfbench.shapes": ("perfbench.engine", "perfbench.distributed", "perfbench.load"),
    "perfbench.scenario": ("perfbench.engine", "perfbench.demo", "perfbench.load"),
    "perfbench.rundir": ("perfbench.engine", "perfbench.analysis", "perfbench.report"),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            else:
                continue
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in mods and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle_and_a_lazy_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    # commands import their dependencies inside functions (start-up time): those edges are seen
    assert "perfbench.errors" in graph["perfbench.cli"]
    assert any(dep.startswith("perfbench.engine") or dep == "perfbench.load" for dep in graph["perfbench.commands.run"])


def test_no_import_cycle_in_perfbench():
    assert cycles(import_graph()) == []


def test_each_layer_imports_only_what_it_may():
    graph = import_graph()
    broken = []
    for name, deps in sorted(graph.items()):
        for layer, forbidden in FORBIDDEN.items():
            if name == layer or name.startswith(layer + "."):
                broken += [f"{name} -> {dep}" for dep in sorted(deps)
                           if any(dep == f or dep.startswith(f + ".") for f in forbidden)]
    assert broken == []


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for i, members in enumerate(LAYERS):
        if part in members:
            return i
    raise AssertionError(f"{module} is in no layer: add perfbench/{part} to LAYERS and to docs/design.md")


def test_every_module_imports_only_from_its_layer_or_below():
    graph = import_graph()
    upward = [f"{name} -> {dep}" for name, deps in sorted(graph.items()) for dep in sorted(deps)
              if layer_of(dep) > layer_of(name)]
    assert upward == []


def test_no_module_grows_past_700_lines():
    """One job per module: a module this long has several (split it where its jobs part)."""
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 700}
    assert long == {}


def test_library_errors_are_inside_the_error_tree():
    """perfbench raises its own errors (``errors.py``), so a caller catches one tree and the CLI maps it to an
    exit code; a bare built-in would end in a traceback. (ConfigError is also a ValueError, FrameError a
    TypeError, ProfilerError a RuntimeError, so code catching the built-ins keeps working.)"""
    builtins = {"Exception", "ValueError", "RuntimeError", "TypeError", "KeyError", "OSError"}
    bare = []
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name) \
                    and node.exc.func.id in builtins:
                bare.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} raises {node.exc.func.id}")
    assert bare == []
