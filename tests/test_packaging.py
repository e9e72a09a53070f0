"""The base distribution is the service agent alone: built as a wheel, installed with no extras into a fresh
virtual environment, it adds at most 5 MB, pulls in no other package, imports nothing heavy, works (the
agent attributes SQL in a WSGI and an ASGI application), and the workbench's CLI names the extra to install.

Building the wheel needs the build backend (hatchling) from PyPI, or from uv's cache: without either the
test fails and says so. uv is the one the Makefile installs into the virtual environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_INSTALL_BYTES = 5 * 1024 * 1024
HEAVY = ("polars", "pyarrow", "numpy", "jupyter", "jupyter_client", "jupyterlab", "ipykernel", "dask",
         "distributed", "bokeh", "altair", "papermill", "aiohttp", "sqlalchemy")

# runs inside the fresh environment: the agent in a WSGI and an ASGI application, no framework installed
PROBE = r'''
import asyncio, io, json, sqlite3, sys
import perfbench.agent
from perfbench.agent import Agent

heavy = sorted(m for m in sys.modules if m.partition(".")[0] in HEAVY)
agent = Agent("probe-token-0123456789")

def wsgi_app(environ, start_response):
    conn = sqlite3.connect(":memory:")
    for i in range(3):
        conn.execute("SELECT ?", (i,)).fetchall()
    conn.close()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

from wsgiref.util import setup_testing_defaults
environ = {"PATH_INFO": "/items/7", "HTTP_X_REQUEST_ID": "41"}
setup_testing_defaults(environ)
body = b"".join(agent.wrap_wsgi(wsgi_app)(environ, lambda status, headers, exc_info=None: None))

async def asgi_app(scope, receive, send):
    sqlite3.connect(":memory:").execute("SELECT 1").fetchall()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

async def call_asgi():
    sent = []
    async def send(message):
        sent.append(message)
    async def receive():
        return {"type": "http.request", "body": b""}
    scope = {"type": "http", "method": "GET", "path": "/health", "headers": [(b"x-request-id", b"42")]}
    await agent.wrap_asgi(asgi_app)(scope, receive, send)
    return sent[0]["status"]

status = asyncio.run(call_asgi())
records = agent.log.drain()["queries"]
agent.uninstall()
print(json.dumps({"heavy": heavy, "body": body.decode(), "asgi_status": status,
                  "per_request": {str(r): records["request_id"].count(r) for r in (41, 42)},
                  "endpoints": sorted(set(records["endpoint"]))}))
'''


def tree_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def find_uv() -> str:
    candidate = Path(sys.executable).parent / "uv"
    uv = str(candidate) if candidate.exists() else shutil.which("uv")
    assert uv, "uv is needed to build and install the wheel (the Makefile installs it into .venv)"
    return uv


def run(cmd: list[str], what: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


def test_base_wheel_is_the_agent_alone(tmp_path: Path) -> None:
    uv = find_uv()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    dist = tmp_path / "dist"
    build = subprocess.run([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], capture_output=True,
                           text=True, timeout=180, env=env)
    assert build.returncode == 0, (
        "building the wheel failed; it needs the build backend (hatchling) from PyPI or uv's cache, "
        f"so check that PyPI is reachable: {build.stderr[-2000:]}")
    (wheel,) = dist.glob("perfbench-*.whl")

    venv = tmp_path / "venv"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], "uv venv", env=env)
    python = venv / "bin" / "python"
    before = tree_bytes(venv)
    # compiled like pip would (pip compiles every module it installs)
    run([uv, "pip", "install", "--quiet", "--python", str(python), "--compile-bytecode", str(wheel)],
        "installing the wheel with no extras", env=env)
    added = tree_bytes(venv) - before
    listed = run([uv, "pip", "list", "--python", str(python), "--format", "json"], "uv pip list", env=env)
    assert [p["name"] for p in json.loads(listed.stdout)] == ["perfbench"]  # no dependency at all
    print(f"the agent install adds {added / 1e6:.2f} MB")
    assert added <= MAX_INSTALL_BYTES, f"the agent install adds {added / 1e6:.1f} MB"

    probe = run([str(python), "-c", f"HEAVY = {HEAVY!r}\n" + PROBE], "the probe in the fresh venv",
                cwd=tmp_path, env=env, timeout=60)
    got = json.loads(probe.stdout)
    assert got["heavy"] == []
    assert got["body"] == "ok" and got["asgi_status"] == 200
    assert got["per_request"] == {"41": 3, "42": 1}
    assert got["endpoints"] == ["GET /health", "GET /items/{id}"]

    cli = venv / "bin" / "perfbench"
    run([str(cli), "--help"], "perfbench --help without extras", cwd=tmp_path, env=env)
    missing = subprocess.run([str(cli), "run", "http://127.0.0.1:9", "--duration", "1", "--quiet"],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert missing.returncode == 1, missing.stderr
    assert "Traceback" not in missing.stderr
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'perfbench[load]'" in lines[0], missing.stderr
    assert not (tmp_path / "data").exists()  # nothing was started or written


def test_the_extras_the_cli_names_are_declared_and_in_all() -> None:
    import re
    import tomllib

    from perfbench.cli import EXTRA_OF_MODULE

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (everything,) = extras["all"]
    in_all = set(re.fullmatch(r"perfbench\[(.*)\]", everything).group(1).split(","))
    assert set(EXTRA_OF_MODULE.values()) <= in_all <= set(extras)
    assert extras["agent"] == [] and "dev" not in in_all


@pytest.mark.parametrize("module", ["pyarrow", "dask"])
def test_a_command_missing_its_extra_says_which_in_one_line(module: str, tmp_path: Path) -> None:
    # the module made unimportable, as in an install without the extra
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from perfbench.cli import main\n"
            "sys.exit(main(['run', 'http://127.0.0.1:9', '--duration', '1', '--quiet', '--workers', '2']))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=env)
    extra = {"pyarrow": "load", "dask": "distributed"}[module]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"perfbench: error: this command needs {module}, which is not installed (the base install is the "
        f"service agent alone): pip install 'perfbench[{extra}]' (or 'perfbench[all]' for everything)")
