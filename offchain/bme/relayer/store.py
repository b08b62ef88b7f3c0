"""The job store: every state change of a job, the ingestion checkpoint and the leases, in transactions.

Each method is one database transaction. Ingestion writes the rows an event range produced and the new
checkpoint together, so a crash either keeps both or neither. A job is recorded DISPATCHED (with its operator
and a lease) before the relayer calls the operator, and SETTLING (with its settlement transaction) before the
transaction is sent, so a restarted relayer knows what may be in flight. Claims use `FOR UPDATE SKIP LOCKED`
on PostgreSQL, so several relayers sharing a database never take the same job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, case, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bme.relayer.db import (
    UNAVAILABLE,
    Attempt,
    BlockHash,
    Checkpoint,
    Job,
    Lease,
    Model,
    Operator,
    Reveal,
    Settlement,
    State,
    Transition,
    make_engine,
)
from bme.relayer.events import Event
from bme.relayer.migrate import upgrade_to_head

CHECKPOINT = "events"
_TRANSITIONS = "bme_transitions"  # a session's transitions not yet written
_TRANSITION_TABLE = cast(Table, Transition.__table__)
KEEP_BLOCK_HASHES = 512


class LeaseLost(Exception):
    """This relayer no longer holds the lease its write needs: another relayer took over."""


class RevealConflict(Exception):
    """A different request was already revealed for the job."""


#: The wait before a job's next try after its first call that found the node down or busy; it doubles with
#: each such call, up to `MAX_UNAVAILABLE_BACKOFF_S`.
FIRST_UNAVAILABLE_BACKOFF_S = 0.25
MAX_UNAVAILABLE_BACKOFF_S = 15.0


def unavailable_backoff(failures: int) -> float:
    """Seconds before the next try of a job whose calls found the node down or busy `failures` times."""
    return min(FIRST_UNAVAILABLE_BACKOFF_S * 2.0 ** (max(failures, 1) - 1), MAX_UNAVAILABLE_BACKOFF_S)


@dataclass(frozen=True)
class OperatorInfo:
    """What the registry says of an operator, read when one of its events is ingested."""

    address: str
    endpoint: str
    models: tuple[int, ...]
    active: bool
    jailed: bool
    failure_ratio: float = 0.0  # the relayer's record of it, for choosing among operators
    latency_ms: float = 0.0


@dataclass
class Claim:
    """A job a relayer took for dispatch: the operator it chose and the request to send."""

    job_id: str
    payer: str
    model_id: int
    deadline: int
    request: str
    operator: str
    endpoint: str
    attempt_id: int
    try_number: int


@dataclass(frozen=True)
class Tries:
    """A job's calls so far, per operator address: all of them, and those that used up one of its tries (all
    but the calls that found the node down or busy, `UNAVAILABLE`)."""

    calls: dict[str, int] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)


@dataclass
class Choice:
    """A dispatcher's decision for a job: an operator, or a reason to fail it or to wait."""

    operator: OperatorInfo | None = None
    fail: str | None = None
    wait: str | None = None


@dataclass
class IngestResult:
    revealed: list[str] = field(default_factory=list)
    opened: int = 0
    settled: int = 0
    expired: int = 0


class JobStore:
    """Transactions over the relayer's database."""

    def __init__(self, url_or_engine: str | Engine, owner: str) -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        upgrade_to_head(self.engine)
        self.owner = owner
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.postgres = self.engine.dialect.name == "postgresql"
        self._model_cache: dict[str, int] | None = None
        #: The lease that ingestion and settlement writes must hold (None: no check, one relayer alone).
        self.fence: str | None = None

        @event.listens_for(self._session, "before_commit")
        def _write_transitions(session: Session) -> None:
            rows = session.info.pop(_TRANSITIONS, None)
            if rows:  # the table's plain insert: the ORM's bulk insert costs several times more per row
                session.connection().execute(_TRANSITION_TABLE.insert(), rows)

    def session(self) -> Session:
        return self._session()

    def _check_fence(self, s: Session) -> None:
        """Fencing: inside the writing transaction, this relayer must still hold the lease (on PostgreSQL the
        lease row is locked until the commit, so a takeover waits for this write or this write sees it)."""
        if self.fence is None:
            return
        q = select(Lease.owner, Lease.until).where(Lease.name == self.fence)
        if self.postgres:
            q = q.with_for_update()
        row = s.execute(q).first()
        if row is None or row.owner != self.owner or row.until < time.time():
            raise LeaseLost(f"{self.owner} no longer holds the {self.fence} lease")

    def _transition(
        self, s: Session, job_ids: Iterable[str], state: State, at: float, detail: str | None
    ) -> None:
        """Records transitions; they are written in one statement when the transaction commits."""
        pending: list[dict[str, Any]] = s.info.setdefault(_TRANSITIONS, [])
        pending.extend(
            {"job_id": j, "state": state.value, "at": at, "by": self.owner, "detail": detail} for j in job_ids
        )

    # -- ingestion ---------------------------------------------------------------------------------------

    def checkpoint(self) -> tuple[int, str] | None:
        with self.session() as s:
            row = s.get(Checkpoint, CHECKPOINT)
            return None if row is None else (row.block_number, row.block_hash)

    def recent_hashes(self, limit: int = KEEP_BLOCK_HASHES) -> list[tuple[int, str]]:
        """Stored block hashes, newest first."""
        with self.session() as s:
            rows = s.execute(
                select(BlockHash.block_number, BlockHash.block_hash)
                .order_by(BlockHash.block_number.desc())
                .limit(limit)
            ).all()
            return [(int(n), str(h)) for n, h in rows]

    def ingest(
        self,
        events: Sequence[Event],
        hashes: dict[int, str],
        checkpoint: tuple[int, str],
        operators: Sequence[OperatorInfo],
    ) -> IngestResult:
        """Stores the rows of one ingested block range and moves the checkpoint, atomically."""
        now = time.time()
        result = IngestResult()
        with self.session() as s, s.begin():
            self._check_fence(s)
            models = self._model_cache if self._model_cache is not None else self._models(s)
            # One query loads every job and reveal the events name; the loop's `get`s then hit the session.
            ids = [f"0x{ev.args['jobId']:064x}" for ev in events if "jobId" in ev.args]
            if ids:
                list(s.scalars(select(Job).where(Job.job_id.in_(ids))))
                opened = [f"0x{ev.args['jobId']:064x}" for ev in events if ev.name == "JobOpened"]
                if opened:
                    list(s.scalars(select(Reveal).where(Reveal.job_id.in_(opened))))
            for ev in events:
                if ev.name == "JobOpened":
                    self._on_opened(s, ev, now, models, result)
                elif ev.name == "JobSettled":
                    self._on_closed(s, ev, State.SETTLED, now, result)
                elif ev.name == "JobExpired":
                    self._on_closed(s, ev, State.EXPIRED, now, result)
                elif ev.name in ("ModelPriced", "ModelDelisted"):
                    self._on_model(s, ev)
                    s.flush()
                    models = self._models(s)
            for op in operators:
                self._upsert_operator(s, op, checkpoint[0])
            blocks = {**hashes, checkpoint[0]: checkpoint[1]}
            s.execute(
                delete(BlockHash).where(
                    or_(
                        BlockHash.block_number.in_(list(blocks)),
                        BlockHash.block_number < checkpoint[0] - KEEP_BLOCK_HASHES,
                    )
                )
            )
            s.execute(insert(BlockHash), [{"block_number": n, "block_hash": h} for n, h in blocks.items()])
            moved = s.execute(
                update(Checkpoint)
                .where(Checkpoint.name == CHECKPOINT)
                .values(block_number=checkpoint[0], block_hash=checkpoint[1])
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                s.add(Checkpoint(name=CHECKPOINT, block_number=checkpoint[0], block_hash=checkpoint[1]))
        return result

    def _on_model(self, s: Session, ev: Event) -> None:
        row = s.get(Model, ev.args["modelId"])
        if ev.name == "ModelDelisted":
            if row is not None:
                row.listed, row.block_number = False, ev.block_number
            return
        if row is None:
            row = Model(model_id=ev.args["modelId"])
            s.add(row)
        row.name, row.listed, row.block_number = ev.args["name"], True, ev.block_number
        row.input_price, row.output_price = ev.args["inputPricePerMillion"], ev.args["outputPricePerMillion"]
        self._model_cache = None

    @staticmethod
    def _models(s: Session) -> dict[str, int]:
        return {name: int(mid) for mid, name in s.execute(select(Model.model_id, Model.name))}

    def models(self) -> dict[str, int]:
        """Model ids by name (delisted models included: their open jobs still settle)."""
        if self._model_cache is None:
            with self.session() as s:
                self._model_cache = self._models(s)
        return self._model_cache

    def model_rows(self) -> list[Model]:
        with self.session() as s:
            return list(s.scalars(select(Model).order_by(Model.model_id)))

    def _on_opened(
        self, s: Session, ev: Event, now: float, models: dict[str, int], result: IngestResult
    ) -> None:
        job_id = f"0x{ev.args['jobId']:064x}"
        existing = s.get(Job, job_id)
        if existing is not None:
            # Re-ingested after a reorganisation that kept it past dispatch: it lives in the new blocks too.
            existing.block_number, existing.block_hash, existing.tx_hash = (
                ev.block_number,
                ev.block_hash,
                ev.tx_hash,
            )
            return
        state, reason = State.OPENED, None
        reveal = s.get(Reveal, job_id)
        if reveal is not None:
            state, reason = self._check_reveal(reveal, ev.args["modelId"], models)
        job = Job(
            job_id=job_id,
            payer=ev.args["payer"],
            model_id=ev.args["modelId"],
            max_credits=ev.args["maxCredits"],
            tokens_burned=str(ev.args["tokensBurned"]),
            deadline=ev.args["deadline"],
            spec_hash="0x" + ev.args["specHash"].hex(),
            block_number=ev.block_number,
            block_hash=ev.block_hash,
            tx_hash=ev.tx_hash,
            state=state.value,
            reason=reason,
            tries=0,
            lease_until=0.0,
            opened_at=now,
            updated_at=now,
        )
        s.add(job)
        s.flush()
        self._transition(s, [job_id], State.OPENED, now, f"block {ev.block_number}")
        result.opened += 1
        if state != State.OPENED:
            self._transition(s, [job_id], state, now, reason)
            if state == State.REVEALED:
                result.revealed.append(job_id)

    @staticmethod
    def _check_reveal(reveal: Reveal, model_id: int, models: dict[str, int]) -> tuple[State, str | None]:
        wanted = models.get(reveal.model)
        if wanted is None:
            return (
                State.FAILED,
                f"the request asks for model {reveal.model!r}, which the price book does not list",
            )
        if wanted != model_id:
            return (
                State.FAILED,
                f"the request asks for model {reveal.model!r} but the job paid for model {model_id}",
            )
        return State.REVEALED, None

    def _on_closed(self, s: Session, ev: Event, state: State, now: float, result: IngestResult) -> None:
        job_id = f"0x{ev.args['jobId']:064x}"
        job = s.get(Job, job_id)
        if job is None:
            return
        if state == State.SETTLED:
            # The event is the record: its charge and refund, even when the settler saw the receipt first.
            job.settle_tx, job.closed_block = ev.tx_hash, ev.block_number
            job.charge, job.refund = int(ev.args["charge"]), int(ev.args["refund"])
        if job.state == state.value:
            return
        job.state, job.closed_block, job.updated_at = state.value, ev.block_number, now
        job.lease_until = 0.0
        if state == State.SETTLED:
            result.settled += 1
        else:
            result.expired += 1
        self._transition(s, [job_id], state, now, f"block {ev.block_number} tx {ev.tx_hash}")

    def _upsert_operator(self, s: Session, op: OperatorInfo, block: int) -> None:
        row = s.get(Operator, op.address)
        models = ",".join(str(m) for m in op.models)
        if row is None:
            s.add(
                Operator(
                    address=op.address,
                    endpoint=op.endpoint,
                    models=models,
                    active=op.active,
                    jailed=op.jailed,
                    block_number=block,
                    dispatched=0,
                    succeeded=0,
                    failed=0,
                    latency_ewma_ms=0.0,
                )
            )
        else:
            row.endpoint, row.models, row.active, row.jailed, row.block_number = (
                op.endpoint,
                models,
                op.active,
                op.jailed,
                block,
            )

    def rollback(self, ancestor: tuple[int, str]) -> int:
        """Forgets what was ingested after block `ancestor` (a reorganisation); returns the jobs affected."""
        number, block_hash = ancestor
        now = time.time()
        affected = 0
        with self.session() as s, s.begin():
            dropped = list(
                s.scalars(
                    select(Job.job_id).where(
                        Job.block_number > number, Job.state.in_([State.OPENED.value, State.REVEALED.value])
                    )
                )
            )
            if dropped:
                s.execute(delete(Job).where(Job.job_id.in_(dropped)))
                self._transition(s, dropped, State.OPENED, now, f"dropped by a reorganisation below {number}")
            affected += len(dropped)
            # Settlements and expiries mined in the dropped blocks did not happen after all.
            reopened = list(s.scalars(select(Job).where(Job.closed_block > number)))
            for job in reopened:
                job.state = State.COMPLETED.value if job.answer is not None else State.REVEALED.value
                job.closed_block, job.settle_tx, job.charge, job.refund = None, None, None, None
                job.updated_at = now
                self._transition(
                    s, [job.job_id], State(job.state), now, "its closing block was reorganised away"
                )
            affected += len(reopened)
            s.execute(
                update(Settlement)
                .where(Settlement.mined_block > number)
                .values(status="reorged", mined_block=None)
            )
            s.execute(delete(BlockHash).where(BlockHash.block_number > number))
            s.merge(BlockHash(block_number=number, block_hash=block_hash))
            s.merge(Checkpoint(name=CHECKPOINT, block_number=number, block_hash=block_hash))
        return affected

    # -- reveals -----------------------------------------------------------------------------------------

    def add_reveal(self, reveal: Reveal) -> tuple[str, str | None]:
        """Stores a verified reveal; returns the job's state ('PENDING' before its event) and a reason."""
        with self.session() as s, s.begin():
            existing = s.get(Reveal, reveal.job_id)
            if existing is not None:
                if existing.request != reveal.request:
                    raise RevealConflict(f"job {reveal.job_id} was revealed before with another request")
            else:
                s.add(reveal)
            job = s.get(Job, reveal.job_id)
            if job is None:
                return "PENDING", None
            if job.state == State.OPENED.value:
                state, reason = self._check_reveal(reveal, job.model_id, self._models(s))
                job.state, job.reason, job.updated_at = state.value, reason, reveal.received_at
                self._transition(s, [job.job_id], state, reveal.received_at, reason)
            return job.state, job.reason

    # -- dispatch ----------------------------------------------------------------------------------------

    def release_leases(self) -> int:
        """Frees the leases this relayer held before a restart, so its unfinished jobs are taken at once."""
        with self.session() as s, s.begin():
            res = s.execute(update(Job).where(Job.lease_owner == self.owner).values(lease_until=0.0))
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    def claim(
        self,
        limit: int,
        lease_s: float,
        choose: Callable[[Job, Tries, list[OperatorInfo]], Choice],
        now: float | None = None,
    ) -> tuple[list[Claim], list[str]]:
        """Takes up to `limit` jobs ready for dispatch and records, for each, the operator `choose` picks.

        Returns the claims to send and the ids of jobs failed for good (no operator left to try).
        """
        now = time.time() if now is None else now
        claims: list[Claim] = []
        failed: list[str] = []
        with self.session() as s, s.begin():
            q = (
                select(Job)
                .where(
                    Job.state.in_([State.REVEALED.value, State.DISPATCHED.value]),
                    Job.lease_until < now,
                )
                .order_by(Job.block_number)
                .limit(limit)
            )
            if self.postgres:
                q = q.with_for_update(skip_locked=True)
            jobs = list(s.scalars(q))
            if not jobs:
                return claims, failed
            operators = [
                OperatorInfo(
                    o.address,
                    o.endpoint,
                    tuple(int(m) for m in o.models.split(",") if m),
                    o.active,
                    o.jailed,
                    o.failed / o.dispatched if o.dispatched else 0.0,
                    o.latency_ewma_ms,
                )
                for o in s.scalars(select(Operator))
            ]
            tried: dict[str, Tries] = {j.job_id: Tries() for j in jobs}
            retried = [j.job_id for j in jobs if j.tries]
            if retried:  # first tries (the usual case) have no attempts to count
                used_try = case((Attempt.outcome == UNAVAILABLE, 0), else_=1)
                for job_id, operator, calls, used in s.execute(
                    select(Attempt.job_id, Attempt.operator, func.count(), func.sum(used_try))
                    .where(Attempt.job_id.in_(retried))
                    .group_by(Attempt.job_id, Attempt.operator)
                ):
                    tried[job_id].calls[operator] = int(calls)
                    tried[job_id].used[operator] = int(used or 0)
            reveals = {r.job_id: r for r in s.scalars(select(Reveal).where(Reveal.job_id.in_(list(tried))))}
            for job in jobs:
                resend = job.state == State.DISPATCHED.value and job.operator is not None
                if resend:
                    # In flight when its lease ran out (a crash): ask the same operator again; the job's name
                    # makes the operator answer from its journal instead of serving it twice.
                    choice = Choice(next((o for o in operators if o.address == job.operator), None))
                    if choice.operator is None:
                        choice = choose(job, tried[job.job_id], operators)
                else:
                    choice = choose(job, tried[job.job_id], operators)
                if choice.fail is not None:
                    job.state, job.reason, job.updated_at, job.lease_until = (
                        State.FAILED.value,
                        choice.fail,
                        now,
                        0.0,
                    )
                    self._transition(s, [job.job_id], State.FAILED, now, choice.fail)
                    failed.append(job.job_id)
                    continue
                if choice.operator is None:
                    job.lease_until, job.reason = now + 2.0, choice.wait
                    continue
                op = choice.operator
                attempt = Attempt(job_id=job.job_id, operator=op.address, started_at=now, outcome="sent")
                s.add(attempt)
                s.flush()
                job.tries += 1
                if not resend:
                    self._transition(s, [job.job_id], State.DISPATCHED, now, f"to {op.address}")
                job.state, job.operator, job.lease_owner = State.DISPATCHED.value, op.address, self.owner
                job.lease_until, job.updated_at = now + lease_s, now
                claims.append(
                    Claim(
                        job.job_id,
                        job.payer,
                        job.model_id,
                        job.deadline,
                        reveals[job.job_id].request,
                        op.address,
                        op.endpoint,
                        attempt.id,
                        job.tries,
                    )
                )
        return claims, failed

    def complete(
        self,
        claim: Claim,
        answer: str,
        input_tokens: int,
        output_tokens: int,
        result_hash: str,
        latency_ms: float,
    ) -> bool:
        """Records an operator's answer; False if the job is no longer this relayer's (its lease was lost)."""
        now = time.time()
        with self.session() as s, s.begin():
            res = s.execute(
                update(Job)
                .where(
                    Job.job_id == claim.job_id,
                    Job.state == State.DISPATCHED.value,
                    Job.lease_owner == self.owner,
                )
                .values(
                    state=State.COMPLETED.value,
                    answer=answer,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    result_hash=result_hash,
                    completed_at=now,
                    updated_at=now,
                    lease_until=0.0,
                    reason=None,
                )
            )
            ok = bool(res.rowcount)  # type: ignore[attr-defined]
            self._finish_attempt(s, claim, "ok", None, latency_ms)
            if ok:
                self._transition(
                    s, [claim.job_id], State.COMPLETED, now, f"{input_tokens}+{output_tokens} tokens"
                )
            return ok

    def dispatch_failed(
        self,
        claim: Claim,
        outcome: str,
        detail: str,
        latency_ms: float,
        fatal: bool,
        *,
        kind: str | None = None,
    ) -> None:
        """Records a failed call; the job waits for another try, or fails for good when `fatal`.

        `kind` ('unreachable' or 'answered error', named at the start of `detail`) is counted in the
        operator's record; the job's history gets a transition either way, with the operator and `detail`.
        After an `UNAVAILABLE` call (the node down or busy) the job waits `unavailable_backoff` before its
        next try; after another failure, 0.2 s.
        """
        now = time.time()
        with self.session() as s, s.begin():
            self._finish_attempt(s, claim, outcome, detail, latency_ms, kind)
            values: dict[str, Any] = {"updated_at": now, "reason": f"{claim.operator}: {detail}"}
            wait_s = 0.2
            if outcome == UNAVAILABLE:
                unavailable = s.scalar(
                    select(func.count())
                    .select_from(Attempt)
                    .where(Attempt.job_id == claim.job_id, Attempt.outcome == UNAVAILABLE)
                )
                wait_s = unavailable_backoff(int(unavailable or 1))
            if fatal:
                values.update(state=State.FAILED.value, lease_until=0.0)
            else:
                values.update(state=State.REVEALED.value, lease_until=now + wait_s, operator=None)
            res = s.execute(
                update(Job)
                .where(
                    Job.job_id == claim.job_id,
                    Job.state == State.DISPATCHED.value,
                    Job.lease_owner == self.owner,
                )
                .values(**values)
            )
            if res.rowcount:  # type: ignore[attr-defined]
                if fatal:
                    self._transition(s, [claim.job_id], State.FAILED, now, values["reason"])
                else:
                    later = f" in {wait_s:g} s" if outcome == UNAVAILABLE else ""
                    retry = f"{values['reason']}; to be dispatched again{later}"
                    self._transition(s, [claim.job_id], State.REVEALED, now, retry)

    def _finish_attempt(
        self,
        s: Session,
        claim: Claim,
        outcome: str,
        detail: str | None,
        latency_ms: float,
        kind: str | None = None,
    ) -> None:
        s.execute(
            update(Attempt)
            .where(Attempt.id == claim.attempt_id)
            .values(outcome=outcome, detail=detail, latency_ms=latency_ms)
        )
        op = s.get(Operator, claim.operator)
        if op is not None:
            op.dispatched += 1
            if outcome == "ok":
                op.succeeded += 1
                op.latency_ewma_ms = (
                    latency_ms if op.succeeded == 1 else 0.8 * op.latency_ewma_ms + 0.2 * latency_ms
                )
            else:
                op.failed += 1
                op.last_error = detail
                if kind == "unreachable":
                    op.unreachable = (op.unreachable or 0) + 1
                elif kind == "answered error":
                    op.answered_errors = (op.answered_errors or 0) + 1

    def fail_unservable(self, chain_now: float, margin_s: float) -> list[str]:
        """Jobs waiting for an operator that could no longer be settled before their deadline even if one
        answered now (`chain_now`: the chain's time): FAILED at once, so that their payers know."""
        with self.session() as s, s.begin():
            ids = list(
                s.scalars(
                    select(Job.job_id).where(
                        Job.state == State.REVEALED.value, Job.deadline < chain_now + margin_s
                    )
                )
            )
            if ids:
                now = time.time()
                reason = (
                    f"no operator served it in time to settle before its deadline (a settlement needs "
                    f"{margin_s:g} s); the payer may refund it after the deadline"
                )
                s.execute(
                    update(Job)
                    .where(Job.job_id.in_(ids), Job.state == State.REVEALED.value)
                    .values(state=State.FAILED.value, updated_at=now, reason=reason, lease_until=0.0)
                )
                self._transition(s, ids, State.FAILED, now, reason)
            return ids

    def expire_overdue(self, now: float, margin_s: float) -> list[str]:
        """Jobs that can no longer be settled before their deadline: EXPIRED, for the payer to refund."""
        with self.session() as s, s.begin():
            ids = list(
                s.scalars(
                    select(Job.job_id).where(
                        Job.state.in_(
                            [
                                State.OPENED.value,
                                State.REVEALED.value,
                                State.DISPATCHED.value,
                                State.COMPLETED.value,
                            ]
                        ),
                        Job.deadline < now + margin_s,
                    )
                )
            )
            if ids:
                s.execute(
                    update(Job)
                    .where(Job.job_id.in_(ids))
                    .values(state=State.EXPIRED.value, updated_at=now, reason="its deadline passed unsettled")
                )
                self._transition(
                    s, ids, State.EXPIRED, now, "deadline passed unsettled: the payer may refund it"
                )
            return ids

    # -- settlement --------------------------------------------------------------------------------------

    def settleable(self, limit: int) -> tuple[list[Job], float | None]:
        """Completed jobs in completion order, and when the oldest of them completed."""
        with self.session() as s:
            jobs = list(
                s.scalars(
                    select(Job)
                    .where(Job.state == State.COMPLETED.value)
                    .order_by(Job.completed_at)
                    .limit(limit)
                )
            )
            return jobs, (jobs[0].completed_at if jobs else None)

    def begin_settlement(self, job_ids: Sequence[str], nonce: int, tx_hash: str, gas_price: int) -> int:
        now = time.time()
        with self.session() as s, s.begin():
            self._check_fence(s)
            row = Settlement(
                nonce=nonce,
                tx_hashes=tx_hash,
                gas_price=gas_price,
                jobs=len(job_ids),
                status="pending",
                sent_at=now,
            )
            s.add(row)
            s.flush()
            s.execute(
                update(Job)
                .where(Job.job_id.in_(list(job_ids)), Job.state == State.COMPLETED.value)
                .values(state=State.SETTLING.value, settlement_id=row.id, updated_at=now)
            )
            self._transition(s, job_ids, State.SETTLING, now, f"nonce {nonce} tx {tx_hash}")
            return int(row.id)

    def bump_settlement(self, settlement_id: int, tx_hash: str, gas_price: int) -> None:
        with self.session() as s, s.begin():
            row = s.get(Settlement, settlement_id)
            if row is not None:
                row.tx_hashes = f"{row.tx_hashes},{tx_hash}"
                row.gas_price = gas_price
                row.sent_at = time.time()  # the next bump waits as long again

    def pending_settlements(self) -> list[Settlement]:
        with self.session() as s:
            return list(
                s.scalars(select(Settlement).where(Settlement.status == "pending").order_by(Settlement.id))
            )

    def settlement_jobs(self, settlement_id: int) -> list[Job]:
        with self.session() as s:
            return list(s.scalars(select(Job).where(Job.settlement_id == settlement_id)))

    def settlement_mined(
        self,
        settlement_id: int,
        tx_hash: str,
        block: int,
        gas_used: int,
        charges: dict[str, tuple[int, int]] | None = None,
    ) -> list[str]:
        """Marks a settlement mined and its jobs SETTLED, with their (charge, refund); returns the jobs."""
        now = time.time()
        with self.session() as s, s.begin():
            row = s.get(Settlement, settlement_id)
            if row is not None:
                row.status, row.mined_block, row.gas_used = "mined", block, gas_used
            ids = self._settling(s, settlement_id)
            if ids:
                s.execute(
                    update(Job)
                    .where(Job.job_id.in_(ids))
                    .values(state=State.SETTLED.value, settle_tx=tx_hash, closed_block=block, updated_at=now)
                )
                for job_id, (charge, refund) in (charges or {}).items():
                    s.execute(update(Job).where(Job.job_id == job_id).values(charge=charge, refund=refund))
                self._transition(s, ids, State.SETTLED, now, f"block {block} tx {tx_hash}")
            return ids

    @staticmethod
    def _settling(s: Session, settlement_id: int) -> list[str]:
        """The jobs of a settlement still waiting for it."""
        return list(
            s.scalars(
                select(Job.job_id).where(
                    Job.settlement_id == settlement_id, Job.state == State.SETTLING.value
                )
            )
        )

    def settlement_dropped(self, settlement_id: int, status: str, reason: str) -> None:
        """The settlement will not be mined (or reverted): its unsettled jobs go back to COMPLETED."""
        now = time.time()
        with self.session() as s, s.begin():
            row = s.get(Settlement, settlement_id)
            if row is not None:
                row.status = status
            ids = self._settling(s, settlement_id)
            if ids:
                s.execute(
                    update(Job)
                    .where(Job.job_id.in_(ids))
                    .values(state=State.COMPLETED.value, settlement_id=None, updated_at=now)
                )
                self._transition(s, ids, State.COMPLETED, now, reason)

    def requeue(self, job_ids: Sequence[str]) -> None:
        """Puts completed jobs at the back of the settlement queue."""
        if job_ids:
            with self.session() as s, s.begin():
                s.execute(
                    update(Job)
                    .where(Job.job_id.in_(list(job_ids)), Job.state == State.COMPLETED.value)
                    .values(completed_at=time.time(), reason="its payment is not on the chain (reorganised)")
                )

    def mark(
        self, job_ids: Sequence[str], state: State, reason: str, *, closed_block: int | None = None
    ) -> None:
        """Moves jobs to `state` for `reason` (e.g. found settled or expired on-chain)."""
        if not job_ids:
            return
        now = time.time()
        with self.session() as s, s.begin():
            values: dict[str, Any] = {
                "state": state.value,
                "updated_at": now,
                "reason": reason,
                "lease_until": 0.0,
            }
            if closed_block is not None:
                values["closed_block"] = closed_block
            s.execute(update(Job).where(Job.job_id.in_(list(job_ids))).values(**values))
            self._transition(s, job_ids, state, now, reason)

    # -- leases ------------------------------------------------------------------------------------------

    def hold_lease(self, name: str, ttl_s: float, now: float | None = None) -> bool:
        """Takes or renews the lease `name` for this relayer; False while another relayer holds it."""
        now = time.time() if now is None else now
        with self.session() as s, s.begin():
            res = s.execute(
                update(Lease)
                .where(Lease.name == name, or_(Lease.owner == self.owner, Lease.until < now))
                .values(owner=self.owner, until=now + ttl_s)
            )
            if res.rowcount:  # type: ignore[attr-defined]
                return True
            if s.get(Lease, name) is not None:
                return False
        try:
            with self.session() as s, s.begin():
                s.add(Lease(name=name, owner=self.owner, until=now + ttl_s))
        except IntegrityError:
            return False  # another relayer created it first
        return True

    # -- reading -----------------------------------------------------------------------------------------

    def job(self, job_id: str) -> tuple[Job | None, list[Transition]]:
        with self.session() as s:
            job = s.get(Job, job_id)
            transitions = list(
                s.scalars(select(Transition).where(Transition.job_id == job_id).order_by(Transition.id))
            )
            return job, transitions

    def job_state(self, job_id: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(Job.state).where(Job.job_id == job_id))

    def reveal(self, job_id: str) -> Reveal | None:
        with self.session() as s:
            return s.get(Reveal, job_id)

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            return {
                str(st): int(n) for st, n in s.execute(select(Job.state, func.count()).group_by(Job.state))
            }

    def operators(self) -> list[Operator]:
        with self.session() as s:
            return list(s.scalars(select(Operator).order_by(Operator.address)))

    def dispatch_count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Attempt)) or 0)
