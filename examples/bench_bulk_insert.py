"""Bulk inserts by batch size: 1,000 notifications (the demo's model) inserted in batches of 1 to 1,000 rows.

Each call inserts the 1,000 rows, one ``executemany`` per batch, then rolls back, so every call starts from the
same table. ``sql=True`` shows the statements per call (1,000 / batch size); the fit says how the time falls
with the batch size (t ≈ a + b/n: a per-row cost plus a per-batch one shared by its rows).

    pytest examples/bench_bulk_insert.py
    python examples/bench_bulk_insert.py

Where perfbench is not installed (a source checkout), add ``-p perfbench.bench.plugin`` to pytest.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from perfbench.demo.models import Base, Notification, User, utcnow

ROWS = 1_000
BATCHES = [1, 10, 100, 1_000]


def make_database(url: str = "sqlite://") -> sa.Engine:
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(User(id=1, username="u", email="u@example.com", first_name="A", last_name="B", password_hash="-",
                   created_at=utcnow()))
        s.commit()
    return engine


ROW_VALUES = [{"user_id": 1, "kind": "digest", "title": f"t{i}", "body": "b", "read": False, "created_at": utcnow()}
              for i in range(ROWS)]


def insert_in_batches(engine: sa.Engine, batch: int) -> int:
    with engine.connect() as conn, conn.begin() as tx:
        for i in range(0, ROWS, batch):
            conn.execute(sa.insert(Notification), ROW_VALUES[i:i + batch])
        tx.rollback()
    return ROWS // batch


@pytest.fixture(scope="module")
def engine():
    e = make_database()
    yield e
    e.dispose()


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.bench(sql=True)
def test_insert_1000_rows(bench, engine, batch):
    bench(insert_in_batches, engine, batch)
    assert bench.result.sql["statements_per_call"] == ROWS // batch


def main() -> None:
    from perfbench import bench

    engine = make_database()
    s = bench.Session("bulk_insert", max_time=0.5, sql=True)
    results = s.parametrize(lambda b: insert_in_batches(engine, b), BATCHES, name="insert_1000_rows")
    print(s)
    print(bench.scaling(results)["text"])


if __name__ == "__main__":
    main()
