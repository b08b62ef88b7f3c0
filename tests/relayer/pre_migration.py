"""A relayer database as the releases before migrations left it: the tables `create_all` made (frozen in
`data/`, whatever the models become) and a row in each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

DATA = Path(__file__).with_name("data")

#: One row per table, in the columns those releases had (ids left to their sequences).
ROWS: dict[str, dict[str, Any]] = {
    "jobs": {
        "job_id": "0x" + "11" * 32,
        "payer": "0x" + "ab" * 20,
        "model_id": 1,
        "max_credits": 1_000,
        "tokens_burned": str(10**19),
        "deadline": 4_000_000_000,
        "spec_hash": "0x" + "22" * 32,
        "block_number": 10,
        "block_hash": "0x" + "33" * 32,
        "tx_hash": "0x" + "44" * 32,
        "state": "SETTLED",
        "operator": "0x" + "01" * 20,
        "tries": 1,
        "lease_owner": None,
        "lease_until": 0.0,
        "input_tokens": 31,
        "output_tokens": 7,
        "answer": "Hello.",
        "result_hash": "0x" + "55" * 32,
        "reason": None,
        "settlement_id": 1,
        "settle_tx": "0x" + "66" * 32,
        "closed_block": 12,
        "charge": 4,
        "refund": 996,
        "opened_at": 1_700_000_000.5,
        "completed_at": 1_700_000_001.25,
        "updated_at": 1_700_000_002.0,
    },
    "reveals": {
        "job_id": "0x" + "11" * 32,
        "payer": "0x" + "ab" * 20,
        "spec_hash": "0x" + "22" * 32,
        "model": "SmolLM2-135M-Instruct",
        "request": '{"messages":[{"role":"user","content":"Hi"}]}',
        "signature": "0x" + "00" * 65,
        "received_at": 1_700_000_000.0,
    },
    "transitions": {
        "job_id": "0x" + "11" * 32,
        "state": "OPENED",
        "at": 1_700_000_000.5,
        "by": "relayer-a",
        "detail": None,
    },
    "checkpoints": {"name": "events", "block_number": 12, "block_hash": "0x" + "77" * 32},
    "block_hashes": {"block_number": 12, "block_hash": "0x" + "77" * 32},
    "operators": {
        "address": "0x" + "01" * 20,
        "endpoint": "http://127.0.0.1:9000",
        "models": "1",
        "active": True,
        "jailed": False,
        "block_number": 3,
        "dispatched": 4,
        "succeeded": 3,
        "failed": 1,
        "latency_ewma_ms": 120.5,
        "last_error": "timeout",
        "unreachable": 1,
        "answered_errors": 0,
    },
    "models": {
        "model_id": 1,
        "name": "SmolLM2-135M-Instruct",
        "input_price": 100,
        "output_price": 200,
        "listed": True,
        "block_number": 2,
    },
    "attempts": {
        "job_id": "0x" + "11" * 32,
        "operator": "0x" + "01" * 20,
        "started_at": 1_700_000_000.75,
        "latency_ms": 250.0,
        "outcome": "ok",
        "detail": None,
    },
    "settlements": {
        "nonce": 7,
        "tx_hashes": "0x" + "66" * 32,
        "gas_price": 10**9,
        "jobs": 1,
        "status": "mined",
        "sent_at": 1_700_000_001.5,
        "mined_block": 12,
        "gas_used": 90_000,
    },
    "leases": {"name": "leader", "owner": "relayer-a", "until": 1_700_000_010.0},
}


def create_schema(engine: Engine) -> None:
    """The tables and indexes as `create_all` made them before migrations, on `engine`'s dialect."""
    ddl = (DATA / f"pre_migration_schema.{engine.dialect.name}.sql").read_text()
    body = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    with engine.begin() as conn:
        for statement in body.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)


def insert_rows(engine: Engine, rows: dict[str, dict[str, Any]] = ROWS) -> None:
    with engine.begin() as conn:
        for table, row in rows.items():
            columns = ", ".join(row)
            values = ", ".join(f":{c}" for c in row)
            conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)


def read_rows(engine: Engine, rows: dict[str, dict[str, Any]] = ROWS) -> dict[str, list[dict[str, Any]]]:
    """Every row of each table of `rows`, in the columns `rows` gives."""
    with engine.connect() as conn:
        return {
            table: [dict(r._mapping) for r in conn.execute(text(f"SELECT {', '.join(row)} FROM {table}"))]
            for table, row in rows.items()
        }
