"""perfbench's public API: ``perfbench/__init__.py`` re-exports it lazily, and ``__all__`` is complete."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import perfbench

ROOT = Path(__file__).resolve().parent.parent

# what a user of the README's Python examples and of the guides needs without knowing the layout
REQUIRED = {"run_load", "RunResult", "Scenario", "Request", "Login", "shapes", "Run", "compare", "stress",
            "cold_warm", "run_experiment", "Agent", "PerfbenchError", "ConfigError"}


def test_every_name_in_all_resolves_to_what_its_module_defines():
    for name in perfbench.__all__:
        value = getattr(perfbench, name)
        if isinstance(value, types.ModuleType):
            assert value.__name__ == f"perfbench.{name}", name
        elif name != "__version__":
            home = sys.modules[perfbench._EXPORTS[name].replace(".", "perfbench.", 1)]
            assert getattr(home, name) is value, name


def test_all_holds_the_required_names_and_dir_lists_them():
    assert set(perfbench.__all__) == {"__version__", *perfbench._EXPORTS}
    assert set(perfbench.__all__) >= REQUIRED
    assert set(perfbench.__all__) <= set(dir(perfbench))


def test_an_unknown_name_is_an_attribute_error():
    try:
        perfbench.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("perfbench.no_such_thing resolved")


def test_the_python_examples_in_the_readme_use_only_exported_names():
    """Every name the README imports from a perfbench module is also perfbench.<name>: the examples and
    the API cannot drift apart."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has Python examples"
    imported: set[str] = set()
    for block in blocks:
        for wrapped, names in re.findall(r"^from perfbench[\w.]* import (?:\(([^)]*)\)|([\w, ]+)$)", block, flags=re.M):
            imported |= {n.strip().split(" as ")[0] for n in (wrapped or names).replace("\n", ",").split(",")
                         if n.strip()}
    missing = sorted(n for n in imported if n not in perfbench.__all__)
    assert not missing, f"README imports {missing}, which perfbench/__init__.py does not export"


def test_import_perfbench_loads_nothing_heavy():
    code = ("import sys, perfbench; heavy = {'polars', 'pyarrow', 'numpy', 'aiohttp', 'altair', 'papermill'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_is_typed():
    assert (Path(perfbench.__file__).parent / "py.typed").exists()
    assert str(inspect.signature(perfbench.run_load).parameters["target"].annotation).startswith("str")
