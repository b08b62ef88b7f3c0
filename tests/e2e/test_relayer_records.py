"""The relayer's record of failures by kind survives an upgrade: a database made before the per-kind counters
existed gets them when the relayer opens it, and counts from there."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from bme.relayer.db import make_engine
from bme.relayer.store import JobStore
from tests.relayer.pre_migration import create_schema

pytestmark = pytest.mark.pure


def test_an_older_database_gains_the_failure_counters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relayer.db'}"
    engine = make_engine(url)
    create_schema(engine)
    with engine.begin() as conn:  # as an earlier release left it
        conn.execute(text("ALTER TABLE operators DROP COLUMN unreachable"))
        conn.execute(text("ALTER TABLE operators DROP COLUMN answered_errors"))
        conn.execute(
            text(
                "INSERT INTO operators (address, endpoint, models, active, jailed, block_number, dispatched,"
                " succeeded, failed, latency_ewma_ms) VALUES ('0x01', 'http://x', '1', 1, 0, 1, 4, 3, 1, 2.0)"
            )
        )
    engine.dispose()

    store = JobStore(url, owner="relayer-a")
    columns = {c["name"] for c in inspect(store.engine).get_columns("operators")}
    assert {"unreachable", "answered_errors"} <= columns
    (row,) = store.operators()
    assert (row.dispatched, row.failed, row.unreachable, row.answered_errors) == (4, 1, 0, 0)
    JobStore(url, owner="relayer-b")  # opening it again changes nothing
