"""What a fixed rate costs a Python process on this machine, whatever the engine: the floor under
perfbench's fixed-rate CPU (benchmarks/README.md, "The floor of a fixed rate in Python").

    .venv/bin/python benchmarks/fixed_rate_floor.py --rate 2000 --seconds 10 --rounds 2

Three minimal loops on ``select.epoll``, no asyncio, nothing recorded but latencies in a list, pinned to
CPU 0 with a private nginx (one worker) on CPU 1:

- ``tick``: only the scheduler's timer (a timerfd every 800 µs, as the engine's open model), no requests:
  what waking up costs here;
- ``wake``: HTTP/1.1 keep-alive GETs at RATE on 8 connections, sent on each tick, each response read when
  its socket wakes the loop (as the engine does);
- ``poll``: the same, but sockets are not watched: on each tick every busy connection is read with
  ``recvmsg`` and the response's arrival time taken from the kernel (``SO_TIMESTAMPNS``), so the process
  wakes only for its ticks.

Each prints its CPU (user + system, ``time.process_time``) as % of one core. Bounded: SECONDS of load
plus 2 s, then nginx is stopped by its PID.
"""

import contextlib
import ctypes
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nginx_server import NginxServer  # noqa: E402

CONNS = 8
TICK_NS = 800_000
SO_TIMESTAMPNS = 35
libc = ctypes.CDLL(None, use_errno=True)


class TS(ctypes.Structure):
    _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]


class ITS(ctypes.Structure):
    _fields_ = [("i", TS), ("v", TS)]


def timerfd() -> int:
    fd = libc.timerfd_create(1, 0o4000 | 0o2000000)  # CLOCK_MONOTONIC; NONBLOCK | CLOEXEC
    libc.timerfd_settime(fd, 0, ctypes.byref(ITS(TS(0, TICK_NS), TS(0, TICK_NS))), None)
    return fd


def q(values: list[int], p: float) -> float | None:
    return values[int(p * (len(values) - 1))] / 1e6 if values else None


def load(url: str, mode: str, rate: float, seconds: float) -> dict:
    """``wake`` or ``poll`` (the module's docstring): latencies from each request's intended time."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    conns = []
    for _ in range(CONNS):
        c = socket.create_connection((host, int(port)))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        c.setblocking(False)
        conns.append(c)
    off = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()  # kernel stamps are CLOCK_REALTIME
    tfd = timerfd()
    ep = select.epoll()
    ep.register(tfd, select.EPOLLIN)
    byfd = {c.fileno(): i for i, c in enumerate(conns)}
    if mode == "wake":
        for c in conns:
            ep.register(c.fileno(), select.EPOLLIN)
    free, busy = list(range(CONNS)), {}  # busy: connection -> (intended ns, bytes so far)
    interval, total = int(1e9 / rate), int(rate * seconds)
    t0 = time.monotonic_ns() + 10_000_000
    end_by = t0 + int(seconds * 1e9) + 2_000_000_000
    lat: list[int] = []
    lags: list[int] = []
    diffs: list[int] = []

    def read(i: int, stamped: bool) -> None:
        while True:
            try:
                data, anc, _, _ = conns[i].recvmsg(4096, 64) if stamped else (conns[i].recv(4096), (), 0, None)
            except BlockingIOError:
                return
            if not data:
                raise ConnectionError("nginx closed a keep-alive connection")
            t_user = time.monotonic_ns()
            t_kernel = 0
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, ns = struct.unpack("qq", value[:16])
                    t_kernel = sec * 1_000_000_000 + ns - off
            intended, buf = busy[i]
            buf += data
            if buf.endswith(b"}"):  # nginx's whole answer (a JSON body, Content-Length)
                lat.append((t_kernel or t_user) - intended)
                if t_kernel:
                    diffs.append(t_user - t_kernel)
                del busy[i]
                free.append(i)
            else:
                busy[i] = (intended, buf)

    cpu0 = time.process_time()
    sent = 0
    while (sent < total or busy) and time.monotonic_ns() < end_by:
        for fd, _ in ep.poll(1.0):
            if fd != tfd:
                read(byfd[fd], False)
                continue
            with contextlib.suppress(BlockingIOError):
                os.read(tfd, 8)
            now = time.monotonic_ns()
            if mode == "poll":
                for i in list(busy):
                    read(i, True)
            while sent < total and free and t0 + sent * interval <= now:
                i = free.pop()
                intended = t0 + sent * interval
                conns[i].send(req)
                busy[i] = (intended, b"")
                lags.append(time.monotonic_ns() - intended)
                sent += 1
    cpu = time.process_time() - cpu0
    for c in conns:
        c.close()
    os.close(tfd)
    lat.sort()
    lags.sort()
    diffs.sort()
    return {"mode": mode, "responses": len(lat), "cpu_pct": 100 * cpu / seconds, "latency_p99_ms": q(lat, .99),
            "send_lag_p99_ms": q(lags, .99), "user_after_kernel_p50_ms": q(diffs, .5)}


def tick_only(seconds: float) -> dict:
    tfd = timerfd()
    ep = select.epoll()
    ep.register(tfd, select.EPOLLIN)
    cpu0, end, n = time.process_time(), time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for _fd, _ in ep.poll(1.0):
            with contextlib.suppress(BlockingIOError):
                os.read(tfd, 8)
            n += 1
    cpu = time.process_time() - cpu0
    os.close(tfd)
    return {"mode": "tick", "wakeups_per_s": n / seconds, "cpu_pct": 100 * cpu / seconds,
            "us_per_wakeup": cpu / max(n, 1) * 1e6}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if not 1 <= args.rate <= 20000 or not 1 <= args.seconds <= 120 or not 1 <= args.rounds <= 20:
        ap.error("--rate from 1 to 20000, --seconds from 1 to 120, --rounds from 1 to 20")
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {0})
    with NginxServer(cpu=1) as url:
        for _ in range(args.rounds):
            for mode in ("tick", "wake", "poll"):
                r = tick_only(args.seconds) if mode == "tick" else load(url, mode, args.rate, args.seconds)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}), flush=True)


if __name__ == "__main__":
    main()
