"""Load generation on Dask distributed: engine shards on workers, one run directory.

    from perfbench.load import run_load
    run_load("http://127.0.0.1:8080", shapes.constant(2000, 30), workers=2)        # a local cluster
    run_load(url, plan, scheduler="tcp://10.0.0.5:8786", allow_hosts=["10.0.0.5", "10.0.0.9"])  # an existing one

How it works:

- **The plan is split exactly** (``plan.shard(index, count)`` in ``shapes``, pure). Open model:
  arrival k of the plan goes to shard ``k mod N`` with its intended time and its index unchanged,
  so the union of the shards' intended send times *is* the plan. Closed model: user k goes to
  shard ``k mod N`` with all its spans.
- **A common start**: the coordinator picks an absolute wall-clock instant a little in the
  future (``start_unix_ns``); each shard converts it to its own monotonic clock, corrected by the
  clock offset the coordinator measured to that worker (round trips with ``client.run``, the
  sample with the smallest round trip wins, NTP style). Offsets and round trips go to meta.json.
- **Records**: each shard records into a journal part (an Arrow IPC stream, flushed at least
  once a second) in ``<run dir>/parts/`` when the workers share the coordinator's file system
  (a local cluster), else in the worker's temporary directory, fetched batch by batch after the
  run. The coordinator merges the parts into one ``requests.parquet``, streaming (one batch per
  part in memory, row groups written as they fill), and writes meta.json and summary.json:
  percentiles are exact over all rows, never averaged across workers.
- **A lost shard** (its worker died, or the shard failed, e.g. at login) does not sink the run:
  its flushed rows are kept, and ``engine_stats.lost_shards`` (also in summary.json under
  ``generator``) says which shard was lost, on which worker, why, and the run time of its last
  flushed row. Its unsent arrivals count as planned-but-not-sent, so the summary flags the run.
- **Live progress**: shards publish per-interval stats as Dask worker events (latencies as a
  log histogram with 1% buckets, so merging is a sum, not an average); the coordinator prints
  one merged line per second. The final summary is exact.
- **Safety**: the target is checked on the coordinator (``check_target``) before any shard is
  submitted; shards only ever receive the checked URL.

Shards are pinned to their worker and never retried elsewhere (a rerun would send its load
twice, late): a local cluster runs with ``allowed-failures`` 0, and a shard refuses to start
when its journal part already exists or the plan's end has passed.

Modules: ``coordinator`` (the run: submit, watch, merge, write the run directory), ``shard`` (the
worker side), ``merge`` (journal parts into one ``requests.parquet``), ``progress`` (the merged live
line), ``cluster`` (local or existing clusters, clock offsets).
"""

from __future__ import annotations

from .cluster import connect, local_cluster, measure_clock_offsets
from .coordinator import run_distributed, run_on_cluster
from .progress import histogram_quantile, latency_histogram

__all__ = ["connect", "histogram_quantile", "latency_histogram", "local_cluster", "measure_clock_offsets",
           "run_distributed", "run_on_cluster"]
