"""The load engine: sends one plan's arrivals (open model) or runs its users (closed model)
against a target, recording every request.

``session.py`` sets a run up (sender, login, recorder, engine, signals, run loop) for this
process or for a distributed shard; ``options.py`` holds the run's settings. The public entry
point, which also decides whether the load runs here or on a cluster, is
``perfbench.load.run_load``: the engine itself never knows about clusters.
"""
