"""Micro-benchmarks for the pytest-benchmark fixture files (not collected by perfbench's tests:
the name does not start with test_). PB_SIZE scales the work, so a "slow build" is PB_SIZE=1300."""

import json
import os
import random

SIZE = int(os.environ.get("PB_SIZE", "1000"))
DATA = [{"id": i, "name": f"item-{i}", "score": random.Random(i).random()} for i in range(SIZE)]


def test_json_dumps(benchmark):
    benchmark(json.dumps, DATA)


def test_sort_by_score(benchmark):
    benchmark(sorted, DATA, key=lambda d: d["score"])
