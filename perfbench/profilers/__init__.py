"""Profilers: server-side and process-side measurements that run beside a load.

- ``resources``: the resource sampler (psutil): a target process's CPU, memory, files, connections
  and threads over time -> ``resources.parquet``.
- ``tracemalloc``: tracemalloc snapshots in-process (``Tracer``) or of a running service through its
  memory endpoint (``perfbench.agent.memory``), grouped by line, site or traceback and diffed
  -> ``memory/tracemalloc_*.parquet``.
- ``memray``: memray captures of a service started under ``memray run`` or of a block in-process,
  read into Polars with memray's stats and offline flame graphs -> ``memory/memray_*``.
- ``leak``: the leak verdict of a soak from memory over requests and time -> ``memory/leak_verdict.json``.
- ``cpu``: py-spy recording of the target -> ``cpu/``.

Import the submodules directly (``from perfbench.profilers.resources import ResourceSampler``); this
package imports nothing heavy on its own.
"""
