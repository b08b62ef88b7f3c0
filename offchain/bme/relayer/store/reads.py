"""What the API and tools read: a job with its history, reveals, counts, operators and the price book."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Row

from bme.relayer.store.base import JOBS, MODELS, OPERATORS, REVEALS, TRANSITIONS, StoreBase

_JOB = select(JOBS).where(JOBS.c.job_id == bindparam("id"))
_HISTORY = select(TRANSITIONS).where(TRANSITIONS.c.job_id == bindparam("id")).order_by(TRANSITIONS.c.id)
_STATE = select(JOBS.c.state).where(JOBS.c.job_id == bindparam("id"))
_REVEAL = select(REVEALS).where(REVEALS.c.job_id == bindparam("id"))
_COUNTS = select(JOBS.c.state, func.count()).group_by(JOBS.c.state)


class ReadStore(StoreBase):
    def job(self, job_id: str) -> tuple[Row[Any] | None, list[Row[Any]]]:
        """The job's row (None before its payment is ingested) and its history, oldest first."""
        with self.engine.connect() as c:
            job = c.execute(_JOB, {"id": job_id}).first()
            return job, list(c.execute(_HISTORY, {"id": job_id}).all())

    def job_state(self, job_id: str) -> str | None:
        with self.engine.connect() as c:
            state = c.execute(_STATE, {"id": job_id}).scalar()
            return None if state is None else str(state)

    def reveal(self, job_id: str) -> Row[Any] | None:
        with self.engine.connect() as c:
            return c.execute(_REVEAL, {"id": job_id}).first()

    def counts(self) -> dict[str, int]:
        """Jobs by state."""
        with self.engine.connect() as c:
            return {str(st): int(n) for st, n in c.execute(_COUNTS)}

    def operators(self) -> list[Row[Any]]:
        with self.engine.connect() as c:
            return list(c.execute(select(OPERATORS).order_by(OPERATORS.c.address)).all())

    def model_rows(self) -> list[Row[Any]]:
        with self.engine.connect() as c:
            return list(c.execute(select(MODELS).order_by(MODELS.c.model_id)).all())
