"""Profilers: server-side and process-side measurements that run beside a load.

- ``resources``: the resource sampler (psutil): a target process's CPU, memory, files, connections
  and threads over time -> ``resources.parquet``.

Import the submodules directly (``from perfbench.profilers.resources import ResourceSampler``); this
package imports nothing heavy on its own.
"""
