"""Profilers: server-side and process-side measurements that run beside a load.

- ``resources``: the resource sampler (psutil): a target process's CPU, memory, files, connections
  and threads over time -> ``resources.parquet``.
- ``queries``: every SQL statement a service runs (SQLAlchemy, ``sqlite3``, asyncpg), fingerprinted and
  redacted, attributed to the engine's request id, and the analyses over them (N+1, queries per
  request, slowest fingerprints) -> ``queries.parquet``. Its service side is installed by
  ``perfbench.agent``.

Import the submodules directly (``from perfbench.profilers.resources import ResourceSampler``); this
package imports nothing heavy on its own.
"""
