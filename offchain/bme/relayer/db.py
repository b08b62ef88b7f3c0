"""The relayer's durable state: SQLAlchemy tables that work on SQLite (one relayer) and PostgreSQL (several).

Amounts that may exceed 64 bits (CMP in wei) are stored as decimal strings; job ids as 0x-hex strings.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bme.job_states import JobState

#: The job states, defined once for the relayer, its API and the user client.
State = JobState


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    payer: Mapped[str] = mapped_column(String(42), index=True)
    model_id: Mapped[int] = mapped_column(Integer)
    max_credits: Mapped[int] = mapped_column(BigInteger)
    tokens_burned: Mapped[str] = mapped_column(String(80))
    deadline: Mapped[int] = mapped_column(BigInteger)
    spec_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(String(66))
    state: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str | None] = mapped_column(String(42), default=None)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    input_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    output_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    # What the operator reported; the two columns above are what the job is settled for (`relayer/usage.py`).
    reported_input_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reported_output_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    answer: Mapped[str | None] = mapped_column(Text, default=None)
    result_hash: Mapped[str | None] = mapped_column(String(66), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    settlement_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    settle_tx: Mapped[str | None] = mapped_column(String(66), default=None)
    closed_block: Mapped[int | None] = mapped_column(BigInteger, default=None)  # of JobSettled/JobExpired
    charge: Mapped[int | None] = mapped_column(BigInteger, default=None)
    refund: Mapped[int | None] = mapped_column(BigInteger, default=None)
    opened_at: Mapped[float] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float, default=None)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_jobs_state_lease", "state", "lease_until"),)


class Reveal(Base):
    """A request text the payer revealed, kept whether its job's event came first or not."""

    __tablename__ = "reveals"

    job_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    payer: Mapped[str] = mapped_column(String(42))
    spec_hash: Mapped[str] = mapped_column(String(66))
    model: Mapped[str] = mapped_column(String(128))
    request: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(132))
    received_at: Mapped[float] = mapped_column(Float)


class Transition(Base):
    """Every state a job entered, when, by which relayer, and why."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(66), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)
    by: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(Text, default=None)


class Checkpoint(Base):
    """How far the event log has been ingested: the last block whose events are all in the store."""

    __tablename__ = "checkpoints"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))


class BlockHash(Base):
    """Hashes of recently ingested blocks, to find the common ancestor after a reorganisation."""

    __tablename__ = "block_hashes"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(66))


class Operator(Base):
    """An operator as the registry describes it, refreshed on each of its events."""

    __tablename__ = "operators"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    endpoint: Mapped[str] = mapped_column(Text)
    models: Mapped[str] = mapped_column(Text)  # comma-separated model ids
    active: Mapped[bool] = mapped_column(Boolean)
    jailed: Mapped[bool] = mapped_column(Boolean)
    block_number: Mapped[int] = mapped_column(BigInteger)
    dispatched: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    latency_ewma_ms: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # The failed calls by kind: no answer at all, or an answer that was an error.
    unreachable: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answered_errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Answers whose reported usage exceeded the relayer's own count beyond the tolerance.
    usage_disputes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Model(Base):
    """A model of the price book, from its `ModelPriced`/`ModelDelisted` events."""

    __tablename__ = "models"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    input_price: Mapped[int] = mapped_column(BigInteger)
    output_price: Mapped[int] = mapped_column(BigInteger)
    listed: Mapped[bool] = mapped_column(Boolean)
    block_number: Mapped[int] = mapped_column(BigInteger)


#: The outcome of a call that found the node down or busy: it does not use up one of the job's tries.
UNAVAILABLE = "unavailable"


class Attempt(Base):
    """One call of an operator for a job: its latency and outcome."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(66), index=True)
    operator: Mapped[str] = mapped_column(String(42), index=True)
    started_at: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    outcome: Mapped[str] = mapped_column(String(16))  # sent, ok, error, timeout, rejected, unavailable
    detail: Mapped[str | None] = mapped_column(Text, default=None)


class Settlement(Base):
    """A settlement transaction, written before it is sent so that a restart knows what may be in flight."""

    __tablename__ = "settlements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hashes: Mapped[str] = mapped_column(Text)  # comma-separated: the first send, then each fee bump
    gas_price: Mapped[int] = mapped_column(BigInteger)
    jobs: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending, mined, failed, dropped
    sent_at: Mapped[float] = mapped_column(Float)
    mined_block: Mapped[int | None] = mapped_column(BigInteger, default=None)
    gas_used: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Lease(Base):
    """A named role only one relayer holds at a time (ingestion and settlement: the leader)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    until: Mapped[float] = mapped_column(Float)


def make_engine(url: str) -> Engine:
    """An engine for `url` (its schema is `bme.relayer.migrate`'s work). SQLite runs in WAL mode so readers
    never wait."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    else:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        engine = create_engine(url, pool_pre_ping=True)
    return engine


__all__ = [
    "UNAVAILABLE",
    "Attempt",
    "Base",
    "BlockHash",
    "Checkpoint",
    "Job",
    "Lease",
    "Model",
    "Operator",
    "Reveal",
    "Settlement",
    "State",
    "Transition",
    "make_engine",
]
