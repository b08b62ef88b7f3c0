"""What every part of the store shares: the engine and tables, the fence, and the one function moving jobs.

The hot path runs on SQLAlchemy Core (the ORM's unit of work costs several times more per row), in as few
transactions as the crash-safety rules allow; the ORM classes of `bme.relayer.db` remain the schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Table, bindparam, insert, literal_column, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bme.job_states import SOURCES, JobState
from bme.relayer.db import (
    Attempt,
    BlockHash,
    Checkpoint,
    Job,
    Lease,
    Model,
    Operator,
    Reveal,
    Settlement,
    Transition,
    make_engine,
)
from bme.relayer.migrate import upgrade_to_head
from bme.relayer.store.records import LeaseLost, OperatorInfo

JOBS = cast(Table, Job.__table__)
REVEALS = cast(Table, Reveal.__table__)
TRANSITIONS = cast(Table, Transition.__table__)
ATTEMPTS = cast(Table, Attempt.__table__)
OPERATORS = cast(Table, Operator.__table__)
MODELS = cast(Table, Model.__table__)
SETTLEMENTS = cast(Table, Settlement.__table__)
CHECKPOINTS = cast(Table, Checkpoint.__table__)
BLOCK_HASHES = cast(Table, BlockHash.__table__)
LEASES = cast(Table, Lease.__table__)

#: A row of the jobs table, read through SQLAlchemy Core: its columns are attributes (`row.state`).
JobRow = Any

_RECORD = insert(TRANSITIONS)
#: A settled job's record from its settlement (receipt or `JobSettled` event): charge, refund, tx and block.
RECORD_SETTLEMENT = (
    update(JOBS)
    .where(JOBS.c.job_id == bindparam("w_id"))
    .values(
        charge=bindparam("charge"),
        refund=bindparam("refund"),
        settle_tx=bindparam("settle_tx"),
        closed_block=bindparam("closed_block"),
    )
)
_PENDING_HISTORY = "bme_pending_history"


def state_in(states: Iterable[JobState | str]) -> ColumnElement[bool]:
    """`jobs.state IN (...)` with the states written into the SQL: a fixed list of the state machine's names,
    so the statement needs no expanding parameter (whose per-call rendering costs more than the query)."""
    names = sorted({JobState(s).value for s in states})
    return JOBS.c.state.in_([literal_column(f"'{n}'") for n in names])


_LEASE_ROW = select(LEASES.c.owner, LEASES.c.until).where(LEASES.c.name == bindparam("name"))
_LEASE_ROW_LOCKED = _LEASE_ROW.with_for_update()


class StoreBase:
    """The engine, this relayer's name, the lease its leader-only writes are fenced by, and `move`."""

    def __init__(self, url_or_engine: str | Engine, owner: str) -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        upgrade_to_head(self.engine)
        self.owner = owner
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.postgres = self.engine.dialect.name == "postgresql"
        #: The lease that ingestion and settlement writes must hold (None: no check, one relayer alone).
        self.fence: str | None = None
        #: The operators as a claim sees them, and when they were read (`ClaimStore`): read again after a
        #: second, or at once after this relayer records a failure or ingests an operator's event.
        self._operators: tuple[float, list[OperatorInfo]] | None = None

    def forget_operators(self) -> None:
        """The next claim reads the operators again."""
        self._operators = None

    def session(self) -> Session:
        """An ORM session, for reading the tables as objects (tools and tests)."""
        return self._session()

    def _check_fence(self, c: Connection) -> None:
        """Fencing: inside the writing transaction, this relayer must still hold the lease (on PostgreSQL the
        lease row is locked until the commit, so a takeover waits for this write or this write sees it)."""
        if self.fence is None:
            return
        row = c.execute(_LEASE_ROW_LOCKED if self.postgres else _LEASE_ROW, {"name": self.fence}).first()
        if row is None or row.owner != self.owner or row.until < time.time():
            raise LeaseLost(f"{self.owner} no longer holds the {self.fence} lease")

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction whose history rows (`record`) are inserted together, in one statement, just
        before it commits; nothing of it is written if it fails."""
        with self.engine.begin() as c:
            pending: list[dict[str, Any]] = []
            c.info[_PENDING_HISTORY] = pending
            try:
                yield c
                if pending:
                    c.execute(_RECORD, pending)
            finally:
                c.info.pop(_PENDING_HISTORY, None)

    def record(
        self, c: Connection, job_ids: Iterable[str], state: JobState, at: float, detail: str | None
    ) -> None:
        """One history row per job: it entered `state` at `at`, by this relayer, for `detail` (written when
        the `writing` transaction commits)."""
        rows = [
            {"job_id": j, "state": state.value, "at": at, "by": self.owner, "detail": detail} for j in job_ids
        ]
        pending = c.info.get(_PENDING_HISTORY)
        if pending is not None:
            pending.extend(rows)
        elif rows:
            c.execute(_RECORD, rows)

    def move(
        self,
        c: Connection,
        job_ids: Sequence[str],
        to: JobState,
        at: float,
        detail: str | None,
        *,
        values: Mapping[str, Any] | None = None,
        sources: Iterable[JobState] | None = None,
        lease_free_at: float | None = None,
        owned: bool = False,
        count_try: bool = False,
        where: Sequence[Any] = (),
    ) -> list[str]:
        """Moves the jobs that are in a state allowed to reach `to` and records each move; returns the jobs
        moved. The move can be narrowed to `sources`, to jobs whose lease ran out before `lease_free_at`, to
        jobs this relayer holds (`owned`), and by extra `where` clauses; `count_try` adds one to the tries.

        The source check is part of the UPDATE, so a job another writer moved meanwhile is left alone: the
        caller learns it from the result instead of overwriting a later state.
        """
        if not job_ids:
            return []
        allowed = SOURCES[to] if sources is None else SOURCES[to] & frozenset(sources)
        params: dict[str, Any] = {"v_state": to.value, "v_updated_at": at}
        params.update({f"v_{k}": v for k, v in (values or {}).items()})
        if lease_free_at is not None:
            params["w_lease_free_at"] = lease_free_at
        if owned:
            params["w_owner"] = self.owner
        single = len(job_ids) == 1
        if single:
            params["w_job_id"] = job_ids[0]
        else:
            params["w_job_ids"] = list(job_ids)
        shape = (
            frozenset(allowed),
            tuple(sorted(values or ())),
            lease_free_at is not None,
            owned,
            count_try,
            single,
        )
        stmt = _MOVES.get(shape) if not where else None
        if stmt is None:
            stmt = _move_statement(*shape).where(*where)
            if not where:
                _MOVES[shape] = stmt
        moved = [str(r[0]) for r in c.execute(stmt, params)]
        self.record(c, moved, to, at, detail)
        return moved


#: Compiled `move` statements by their shape (sources, columns set, conditions): built once, bound per call.
_MOVES: dict[tuple[Any, ...], Any] = {}


def _move_statement(
    allowed: frozenset[JobState],
    columns: tuple[str, ...],
    lease_free: bool,
    owned: bool,
    count_try: bool,
    single: bool,
) -> Any:
    key = JOBS.c.job_id
    conditions = [
        key == bindparam("w_job_id") if single else key.in_(bindparam("w_job_ids", expanding=True)),
        state_in(allowed),
    ]
    if lease_free:
        conditions.append(JOBS.c.lease_until < bindparam("w_lease_free_at"))
    if owned:
        conditions.append(JOBS.c.lease_owner == bindparam("w_owner"))
    sets: dict[str, Any] = {"state": bindparam("v_state"), "updated_at": bindparam("v_updated_at")}
    sets.update({c: bindparam(f"v_{c}") for c in columns})
    if count_try:
        sets["tries"] = JOBS.c.tries + 1
    return update(JOBS).where(*conditions).values(**sets).returning(JOBS.c.job_id)
