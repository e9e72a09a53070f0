"""Dask clusters: a local one for a run, or an existing scheduler; the clock offset to each worker."""

from __future__ import annotations

import contextlib
import time

from ..errors import ConfigError


@contextlib.contextmanager
def local_cluster(workers: int, *, dashboard: bool = True):
    """A local Dask cluster (processes, one thread each, dashboard on loopback) and its Client;
    closed on leaving, also on errors and Ctrl-C. Shards are never retried (allowed-failures 0)."""
    import dask
    from distributed import Client, LocalCluster

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0" if dashboard else None)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


@contextlib.contextmanager
def connect(scheduler: str):
    """A Client of an existing cluster at ``scheduler`` (tcp://HOST:PORT); closed on leaving."""
    from distributed import Client

    client = Client(scheduler, timeout="20s")
    try:
        yield client
    finally:
        client.close()


def _clock_sample() -> int:
    return time.time_ns()


def measure_clock_offsets(client, rounds: int = 7) -> dict[str, dict[str, float]]:
    """Per worker address: offset (worker wall clock minus the coordinator's, ms) and round trip (ms).

    Each round is one ``client.run`` on all workers; per worker the round with the smallest round
    trip is kept, its offset is exact to within half that round trip.
    """
    best: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        t1 = time.time_ns()
        answers = client.run(_clock_sample)
        t2 = time.time_ns()
        for addr, tw in answers.items():
            rtt, off = t2 - t1, tw - (t1 + t2) // 2
            if addr not in best or rtt < best[addr][0]:
                best[addr] = (rtt, off)
    return {a: {"offset_ms": off / 1e6, "rtt_ms": rtt / 1e6, "uncertainty_ms": rtt / 2e6}
            for a, (rtt, off) in sorted(best.items())}
