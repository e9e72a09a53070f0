"""A flow's own rows (method ``FLOW``, endpoint ``flow:<name>``) read apart from the requests'.

A flow's total is not one more request: the summary's overall counts, rates and percentiles are
the requests' alone, and each flow is an endpoint of its own (its latency from the flow's
intended time to its last response).
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..rundir import FLOW_METHOD
from . import rowstats


class FlowRows:
    """The rows of flows' own runs (method FLOW), read apart from the requests' (:func:`apart`)."""

    def __init__(self, batches: rowstats.Batches) -> None:
        self.batches = batches
        self.seen = False

    def __call__(self, columns: list[str]) -> Iterator[pa.Table]:
        for b in self.batches([*columns, "method"]):
            if "method" in b.schema.names:
                b = b.filter(pc.equal(b["method"], FLOW_METHOD))
                if b.num_rows:
                    yield b.drop_columns(["method"]) if "method" not in columns else b


def apart(batches: rowstats.Batches) -> tuple[rowstats.Batches, FlowRows]:
    """The batches without the flows' own rows, and those rows: a flow's total is not one more
    request, so overall counts, rates and percentiles are the requests' alone. ``seen`` tells
    whether any flow row was met (set by the first pass over the requests)."""
    flows = FlowRows(batches)

    def read(columns: list[str]) -> Iterator[pa.Table]:
        for b in batches([*columns, "method"]):
            if "method" in b.schema.names and b.num_rows:
                is_flow = pc.equal(b["method"], FLOW_METHOD)
                if pc.any(is_flow).as_py():
                    flows.seen = True
                    b = b.filter(pc.invert(is_flow))
            yield b.drop_columns(["method"]) if "method" in b.schema.names and "method" not in columns else b
    return read, flows


def requests_only(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The rows of requests (a flow's own rows left out), for what counts requests over time."""
    if "method" not in lf.collect_schema().names():
        return lf
    return lf.filter(pl.col("method") != FLOW_METHOD)
