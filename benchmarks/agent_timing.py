"""What the agent's per-request timing (perfbench.agent.timing) costs the service, per request.

Calls a trivial WSGI application and a trivial ASGI application directly (no server, no socket), with and
without the agent's middleware (SQL capture installed in both, so the difference is the middleware:
binding the request id and the timing record), alternating, best of REPEAT rounds of N requests. Also
the timing alone: ``RequestTimings.begin`` + ``finish`` (sync: with ``thread_time_ns``; asyncio: with
the loop-lag sampler's reading), and what the loop-lag sampler costs an idle service: the process's CPU
over 2 s of an idle event loop with and without it.

    python benchmarks/agent_timing.py [N] [REPEAT] [IDLE_S]   # µs per request added; sampler CPU when idle
"""

from __future__ import annotations

import asyncio
import sys
import time

from perfbench.agent import Agent
from perfbench.agent import sql as capture


def wsgi_app(environ, start_response):  # noqa: ANN001, ANN201
    start_response("200 OK", [])
    return [b"ok"]


async def asgi_app(scope, receive, send) -> None:  # noqa: ANN001
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def per_call_ns(fn, n: int) -> float:  # noqa: ANN001
    start = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - start) / n


def idle_cpu_ms(with_sampler: bool, seconds: float = 2.0) -> float:
    """CPU (ms) of this process over ``seconds`` of an idle event loop, the lag sampler running or not."""
    from perfbench.agent.timing import LagSampler

    async def idle() -> float:
        sampler = LagSampler(asyncio.get_running_loop()).start() if with_sampler else None
        start = time.process_time()
        await asyncio.sleep(seconds)
        used = time.process_time() - start
        if sampler is not None:
            sampler.stop()
        return used * 1000

    return asyncio.run(idle())


def main(n: int = 50_000, repeat: int = 7, idle_s: float = 2.0) -> None:
    agent = Agent(endpoints=False, capacity=1_000_000)
    wrapped_wsgi = agent.wrap_wsgi(wsgi_app)
    wrapped_asgi = agent.wrap_asgi(asgi_app)
    env = {"PATH_INFO": "/x", "REQUEST_METHOD": "GET", "HTTP_X_REQUEST_ID": "12", "REMOTE_ADDR": "127.0.0.1"}

    def wsgi(app):  # noqa: ANN001, ANN202
        def run(k: int) -> None:
            for _ in range(k):
                app(env, lambda s, h: None)
        return run

    scope = {"type": "http", "path": "/x", "method": "GET", "headers": [(b"x-request-id", b"12")]}

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        pass

    def asgi(app):  # noqa: ANN001, ANN202
        def run(k: int) -> None:
            async def go() -> None:
                for _ in range(k):
                    await app(scope, receive, send)
            asyncio.run(go())
        return run

    def timing_only(asynchronous: bool):  # noqa: ANN202
        tag = capture.RequestTag(None, 1, "GET /x")

        def run(k: int) -> None:
            async def go() -> None:
                t = agent.timings
                for _ in range(k):
                    t.finish(tag, t.begin(asynchronous))
            asyncio.run(go())
        return run

    cases = {"wsgi bare": wsgi(wsgi_app), "wsgi agent": wsgi(wrapped_wsgi), "asgi bare": asgi(asgi_app),
             "asgi agent": asgi(wrapped_asgi), "timing sync": timing_only(False), "timing asyncio": timing_only(True)}
    best = {name: float("inf") for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            best[name] = min(best[name], per_call_ns(fn, n))
            agent.timings.reset()
            agent.log.reset()
    agent.uninstall()
    print(f"best of {repeat} rounds of {n} requests, ns per request:")
    for name, v in best.items():
        print(f"  {name:15s} {v:8.0f}")
    print(f"middleware added: WSGI {(best['wsgi agent'] - best['wsgi bare']) / 1000:.2f} µs, "
          f"ASGI {(best['asgi agent'] - best['asgi bare']) / 1000:.2f} µs per request; timing alone: sync "
          f"{best['timing sync'] / 1000:.2f} µs, asyncio {best['timing asyncio'] / 1000:.2f} µs")
    off, on = min(idle_cpu_ms(False, idle_s) for _ in range(3)), min(idle_cpu_ms(True, idle_s) for _ in range(3))
    print(f"idle event loop, {idle_s:g} s: {off:.1f} ms of CPU without the lag sampler, {on:.1f} ms with it "
          f"({(on - off) / (idle_s * 10):.2f}% of one core)")


if __name__ == "__main__":
    args = sys.argv[1:4]
    main(*(int(a) for a in args[:2]), *(float(a) for a in args[2:]))
