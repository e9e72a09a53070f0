"""How fast can anything built on aiohttp's client go here? The naive loop, tuned through aiohttp's
public API only: no total timeout (aiohttp arms a timer per request for it), a DummyCookieJar, the
silent retry of a dead keep-alive connection off, and a prebuilt ``yarl.URL``. No scheduling, no
recording: the ceiling of an engine on aiohttp, to set beside ``naive_aiohttp.py``.

Run: python benchmarks/aiohttp_ceiling.py URL SECONDS CONNECTIONS; prints the request count.
Compare, alternating, with the same nginx (both pinned to CPU 0):

    python benchmarks/aiohttp_ceiling.py --compare 3     # starts a private nginx, 3 x (naive, tuned) x 6 s
"""

import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


async def tuned(url: str, seconds: float, conns: int) -> None:
    """naive_aiohttp.py's own loop, with aiohttp's options set for speed."""
    import aiohttp
    import yarl

    sys.path.insert(0, str(HERE))
    from naive_aiohttp import main

    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None)
    await main(yarl.URL(url), seconds, conns, retry=False,
               session_options={"timeout": timeout, "cookie_jar": aiohttp.DummyCookieJar()})


def compare(reps: int, seconds: float = 6, conns: int = 50) -> None:
    sys.path.insert(0, str(HERE))
    from nginx_server import NginxServer

    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 else []
    runs = {"naive": [sys.executable, str(HERE / "naive_aiohttp.py")], "tuned": [sys.executable, __file__]}
    got: dict[str, list[float]] = {k: [] for k in runs}
    with NginxServer(cpu=1 if pin else None) as url:
        for rep in range(reps):
            for name in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = subprocess.run([*pin, *runs[name], url, str(seconds), str(conns)], capture_output=True,
                                     text=True, check=True)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
                got[name].append(int(out.stdout.split()[0]) / cpu)
                print(f"rep {rep + 1} {name:6s} {got[name][-1]:9,.0f} req/CPU-s", flush=True)
    ratios = [t / n for t, n in zip(got["tuned"], got["naive"], strict=True)]
    print(f"tuned / naive: median {statistics.median(ratios):.2f}x [{min(ratios):.2f} - {max(ratios):.2f}]")


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    else:
        import uvloop

        uvloop.run(tuned(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
