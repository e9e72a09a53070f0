"""The rows' flow columns (``flow``, ``flow_run``, ``step``, ``user_class``) from the recorder's notes:
in the rows' order (the lean path's case), out of order, missing for some rows, and for a row of a
later batch, each row gets exactly its own note, whichever way it was noted."""

from __future__ import annotations

import random

from perfbench.engine.recorder import MemorySink, Recorder


def _row(rec: Recorder, rid: int) -> None:
    rec.record((rid, rec.endpoint("e", "GET"), 0, 1, 2, 200, None, None, 0, 0, -1, -1, None, 0))


def _columns(sink: MemorySink) -> dict[int, tuple]:
    t = sink.table().to_pydict()
    return {rid: (t["flow"][i], t["flow_run"][i], t["step"][i], t["user_class"][i])
            for i, rid in enumerate(t["request_id"])}


def test_notes_in_order_out_of_order_missing_and_late():
    sink = MemorySink()
    rec = Recorder(sink)
    want: dict[int, tuple] = {}
    rng = random.Random(5)
    for rid in range(200):  # in the rows' order, through both ways of noting
        _row(rec, rid)
        flow, cls = rng.choice(["a", "b", None]), rng.choice(["u", "v", None])
        run, step = (rng.randrange(10**12), rng.randrange(50)) if flow is not None else (None, None)
        if rid % 2:
            rec.note((rid, -1 if run is None else run, rec.note_key(flow, cls) + (0 if step is None else step + 1)))
        else:
            rec.note_flow(rid, flow, run, step, cls)
        want[rid] = (flow, run, step, cls)
    rec.flush()
    assert _columns(sink) == want

    sink.batches.clear()
    rids = list(range(1000, 1100))
    for rid in rids:
        _row(rec, rid)
    shuffled = rids[::3][::-1]  # a third of the rows, noted in another order; the others carry nulls
    for rid in shuffled:
        rec.note_flow(rid, "f", rid, 1, "w")
    rec.note_flow(5000, "late", 7, 0, "w")  # a row of the next batch, noted before it is recorded
    rec.flush()
    got = _columns(sink)
    assert got == {rid: ("f", rid, 1, "w") if rid in shuffled else (None, None, None, None) for rid in rids}

    sink.batches.clear()
    _row(rec, 5000)
    rec.flush()
    assert _columns(sink) == {5000: ("late", 7, 0, "w")}  # its note waited for it


def test_rows_carrying_their_notes_beside_rows_noted_aside():
    """Once ``flow_rows()`` is on, a flow's rows carry their note in the row (the lean path's one
    call per row); rows recorded before, by ``add`` or by ``record`` get an empty note, or the one
    ``note_flow`` gives them."""
    sink = MemorySink()
    rec = Recorder(sink, flush_rows=10**6)
    for rid in range(1500):  # before: a chunk already converted, and rows still waiting
        _row(rec, rid)
        if rid % 3 == 0:
            rec.note_flow(rid, "early", 5, rid % 7, None)
    rec.convert_some()
    record = rec.flow_rows()
    key = rec.note_key("f", "u") + 1
    for rid in range(1500, 1600):  # a flow's steps, then the flow's own row: noted in the row
        record((rid, rec.endpoint("e", "GET"), 0, 1, 2, 200, None, None, 0, 0, -1, -1, None, 0, 99, key + rid % 4))
    mix = rec.note_key(None, "v")
    record((1600, rec.endpoint("e", "GET"), 0, 1, 2, 200, None, None, 0, 0, -1, -1, None, 0, -1, mix))
    rec.add(1601, "e", "GET", 0, 1, 2, 200, None, None, 0, None, 0)  # beside, with its note aside
    rec.note_flow(1601, "g", 12, 0, "w")
    rec.add(1602, "e", "GET", 0, 1, 2, 200, None, None, 0, None, 0)  # none at all
    _row(rec, 1603)
    rec.flush()
    got = _columns(sink)
    want = {rid: ("early", 5, rid % 7, None) if rid % 3 == 0 else (None, None, None, None) for rid in range(1500)}
    want.update({rid: ("f", 99, rid % 4, "u") for rid in range(1500, 1600)})
    want.update({1600: (None, None, None, "v"), 1601: ("g", 12, 0, "w"), 1602: (None, None, None, None),
                 1603: (None, None, None, None)})
    assert got == want
    assert rec.rows == 1604 and sink.table().num_rows == 1604
