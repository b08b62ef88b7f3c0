"""Reveals: a payer's request text, kept whether its payment was ingested first or not."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text, bindparam, insert, literal, null, select, union_all

from bme.job_states import JobState
from bme.relayer.db import Reveal
from bme.relayer.store.base import JOBS, REVEALS
from bme.relayer.store.ingestion import IngestionStore, check_reveal
from bme.relayer.store.records import RevealConflict, RevealRecord

_S = JobState
#: The job's earlier reveal (its request) and its row (state, reason, model, output cap), in one statement: a
#: row tagged 'r' for the reveal, one tagged 'j' for the job, each when it exists.
_EARLIER = union_all(
    select(
        literal("r").label("kind"),
        REVEALS.c.request.label("request"),
        null().cast(String).label("state"),
        null().cast(Text).label("reason"),
        null().cast(Integer).label("model_id"),
        null().cast(BigInteger).label("max_output_tokens"),
    ).where(REVEALS.c.job_id == bindparam("id")),
    select(
        literal("j"),
        null().cast(Text),
        JOBS.c.state,
        JOBS.c.reason,
        JOBS.c.model_id,
        JOBS.c.max_output_tokens,
    ).where(JOBS.c.job_id == bindparam("id")),
)
_INSERT = insert(REVEALS)


class RevealStore(IngestionStore):
    def add_reveal(self, reveal: RevealRecord | Reveal) -> tuple[str, str | None]:
        """Stores a verified reveal; returns the job's state (PENDING before its payment is ingested) and the
        reason for a FAILED one. The same reveal again changes nothing; another request for the same job is a
        `RevealConflict`."""
        at = reveal.received_at
        with self.writing() as c:
            rows = {row.kind: row for row in c.execute(_EARLIER, {"id": reveal.job_id})}
            earlier, job = rows.get("r"), rows.get("j")
            if earlier is not None and earlier.request != reveal.request:
                raise RevealConflict(f"job {reveal.job_id} was revealed before with another request")
            if earlier is None:
                c.execute(
                    _INSERT,
                    {
                        "job_id": reveal.job_id,
                        "payer": reveal.payer,
                        "spec_hash": reveal.spec_hash,
                        "model": reveal.model,
                        "request": reveal.request,
                        "signature": reveal.signature,
                        "received_at": at,
                    },
                )
                if job is None:
                    self.record(c, [reveal.job_id], _S.PENDING, at, "revealed; waiting for its payment")
            if job is None:
                return _S.PENDING.value, None
            state, reason = str(job.state), job.reason
            if state == _S.OPENED.value:
                to, why = check_reveal(
                    reveal.model, int(job.model_id), self._models(c), reveal.request, job.max_output_tokens
                )
                if self.move(c, [reveal.job_id], to, at, why, values={"reason": why}, sources=[_S.OPENED]):
                    state, reason = to.value, why
            return state, reason
