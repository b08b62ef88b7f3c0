"""Dispatch records: claiming revealed jobs for an operator, their answers and failed calls, and the jobs that
can no longer be served in time.

A claim reads the jobs ready for dispatch, lets the dispatcher's policy choose an operator for each outside
any transaction, then writes every decision in one transaction in which each job is a compare-and-set on the
state and lease it was read with: several relayers sharing a database never take the same job, and the
loser of a race simply does not get it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, select, update

from bme.job_states import JobState
from bme.relayer.db import UNAVAILABLE
from bme.relayer.store.base import ATTEMPTS, JOBS, OPERATORS, REVEALS, JobRow, StoreBase, state_in
from bme.relayer.store.records import (
    NO_OPERATOR_WAIT_S,
    RETRY_AFTER_FAILURE_S,
    Choice,
    Claim,
    Completion,
    OperatorInfo,
    Tries,
    unavailable_backoff,
)

_S = JobState
_OPERATORS_TTL_S = 1.0
#: How many times `limit` ready jobs a claim reads, to choose its `limit` from.
_WINDOW = 4
_READY = (
    select(
        JOBS.c.job_id,
        JOBS.c.state,
        JOBS.c.payer,
        JOBS.c.model_id,
        JOBS.c.deadline,
        JOBS.c.operator,
        JOBS.c.tries,
        REVEALS.c.request,
    )
    .join(REVEALS, REVEALS.c.job_id == JOBS.c.job_id)
    .where(state_in([_S.REVEALED, _S.DISPATCHED]), JOBS.c.lease_until < bindparam("now"))
    .order_by(JOBS.c.block_number)
    .limit(bindparam("limit"))
)
_OPERATOR_VIEW = select(
    OPERATORS.c.address,
    OPERATORS.c.endpoint,
    OPERATORS.c.models,
    OPERATORS.c.active,
    OPERATORS.c.jailed,
    OPERATORS.c.dispatched,
    OPERATORS.c.failed,
    OPERATORS.c.usage_disputes,
    OPERATORS.c.latency_ewma_ms,
)
_USED_TRY = case((ATTEMPTS.c.outcome == UNAVAILABLE, 0), else_=1)
_TRIES = (
    select(ATTEMPTS.c.job_id, ATTEMPTS.c.operator, func.count(), func.sum(_USED_TRY))
    .where(ATTEMPTS.c.job_id.in_(bindparam("ids", expanding=True)))
    .group_by(ATTEMPTS.c.job_id, ATTEMPTS.c.operator)
)
_UNAVAILABLE_CALLS = (
    select(func.count())
    .select_from(ATTEMPTS)
    .where(ATTEMPTS.c.job_id == bindparam("id"), ATTEMPTS.c.outcome == UNAVAILABLE)
)
_NEW_ATTEMPT = insert(ATTEMPTS)
_FINISH_ATTEMPT = (
    update(ATTEMPTS)
    .where(ATTEMPTS.c.id == bindparam("attempt"))
    .values(outcome=bindparam("outcome"), detail=bindparam("detail"), latency_ms=bindparam("latency"))
)
_OPERATOR_SUCCEEDED = (
    update(OPERATORS)
    .where(OPERATORS.c.address == bindparam("op"))
    .values(
        dispatched=OPERATORS.c.dispatched + 1,
        succeeded=OPERATORS.c.succeeded + 1,
        latency_ewma_ms=case(
            (OPERATORS.c.succeeded == 0, bindparam("latency")),
            else_=0.8 * OPERATORS.c.latency_ewma_ms + 0.2 * bindparam("latency"),
        ),
    )
)
_OPERATOR_DISPUTED = (
    update(OPERATORS)
    .where(OPERATORS.c.address == bindparam("op"))
    .values(usage_disputes=func.coalesce(OPERATORS.c.usage_disputes, 0) + 1)
)
_WAIT = (
    update(JOBS)
    .where(
        JOBS.c.job_id == bindparam("id"),
        JOBS.c.state == bindparam("seen"),
        JOBS.c.lease_until < bindparam("now"),
    )
    .values(lease_until=bindparam("until"), reason=bindparam("why"))
)


def _operator_info(row: Any) -> OperatorInfo:
    return OperatorInfo(
        row.address,
        row.endpoint,
        tuple(int(m) for m in row.models.split(",") if m),
        bool(row.active),
        bool(row.jailed),
        # A usage dispute (a report beyond the relayer's count) weighs like a failed call.
        (row.failed + (row.usage_disputes or 0)) / row.dispatched if row.dispatched else 0.0,
        float(row.latency_ewma_ms),
    )


class ClaimStore(StoreBase):
    def _operator_view(self, c: Connection, now: float) -> list[OperatorInfo]:
        if self._operators is None or not 0 <= now - self._operators[0] < _OPERATORS_TTL_S:
            self._operators = (now, [_operator_info(r) for r in c.execute(_OPERATOR_VIEW)])
        return self._operators[1]

    def release_leases(self) -> int:
        """Frees the leases this relayer held before a restart, so its unfinished jobs are taken at once."""
        with self.writing() as c:
            res = c.execute(update(JOBS).where(JOBS.c.lease_owner == self.owner).values(lease_until=0.0))
            return int(res.rowcount or 0)

    def claim(
        self,
        limit: int,
        lease_s: float,
        choose: Callable[[Any, Tries, list[OperatorInfo]], Choice],
        now: float | None = None,
        refuse: Callable[[Any], str | None] | None = None,
    ) -> tuple[list[Claim], list[str]]:
        """Takes up to `limit` jobs ready for dispatch, each for the operator `choose` picks (a job in flight
        when its lease ran out goes to the same operator again, whose journal answers it without serving it
        twice). A job `refuse` gives a reason for (one that could no longer be settled in time) fails with it
        instead, before any operator is chosen. Returns the claims to send and the jobs failed for good.
        """
        now = time.time() if now is None else now
        claims: list[Claim] = []
        failed: list[str] = []
        lost = 0
        for _round in range(8):  # another relayer may win some of the jobs read: read the next ones
            got, fails, lost = self._claim_round(
                limit - len(claims), lease_s, choose, now, spread=lost > 0, refuse=refuse
            )
            claims += got
            failed += fails
            if not lost or len(claims) >= limit:
                break
        return claims, failed

    def _claim_round(
        self,
        limit: int,
        lease_s: float,
        choose: Callable[[Any, Tries, list[OperatorInfo]], Choice],
        now: float,
        spread: bool,
        refuse: Callable[[Any], str | None] | None = None,
    ) -> tuple[list[Claim], list[str], int]:
        """One read-decide-write round of `claim`; also returns how many jobs another relayer took first."""
        with self.engine.connect() as c:
            if spread:
                # Relayers sharing a database read the same oldest jobs: after losing races, take a random
                # `limit` of the oldest `limit * _WINDOW`, so that the compare-and-sets touch other rows.
                window = c.execute(_READY, {"now": now, "limit": limit * _WINDOW}).all()
                jobs = (
                    window if len(window) <= limit else sorted(random.sample(window, limit), key=window.index)
                )
            else:
                jobs = c.execute(_READY, {"now": now, "limit": limit}).all()
            if not jobs:
                return [], [], 0
            operators = self._operator_view(c, now)
            tried: dict[str, Tries] = {j.job_id: Tries() for j in jobs}
            retried = [j.job_id for j in jobs if j.tries]
            if retried:  # first tries (the usual case) have no attempts to count
                for job_id, operator, calls, used in c.execute(_TRIES, {"ids": retried}):
                    tried[job_id].calls[operator] = int(calls)
                    tried[job_id].used[operator] = int(used or 0)
        # The policy decides outside any transaction; the writes below check nothing moved meanwhile.
        decisions: list[tuple[JobRow, Choice, bool]] = []
        for job in jobs:
            refused = refuse(job) if refuse is not None else None
            if refused is not None:
                decisions.append((job, Choice(fail=refused), False))
                continue
            resend = job.state == _S.DISPATCHED.value and job.operator is not None
            same = next((o for o in operators if o.address == job.operator), None) if resend else None
            choice = Choice(same) if same is not None else choose(job, tried[job.job_id], operators)
            decisions.append((job, choice, same is not None))
        claims: list[Claim] = []
        failed: list[str] = []
        lost = 0
        with self.writing() as c:
            for job, choice, again in decisions:
                if choice.fail is not None:
                    failed += self._fail_claimed(c, job, choice.fail, now)
                elif choice.operator is None:
                    c.execute(
                        _WAIT,
                        {
                            "id": job.job_id,
                            "seen": job.state,
                            "now": now,
                            "until": now + NO_OPERATOR_WAIT_S,
                            "why": choice.wait,
                        },
                    )
                else:
                    claim = self._dispatch(c, job, choice.operator, lease_s, now, again)
                    if claim is None:
                        lost += 1
                    else:
                        claims.append(claim)
        return claims, failed, lost

    def _fail_claimed(self, c: Connection, job: JobRow, reason: str, now: float) -> list[str]:
        return self.move(
            c,
            [job.job_id],
            _S.FAILED,
            now,
            reason,
            values={"reason": reason, "lease_until": 0.0},
            sources=[_S(job.state)],
            lease_free_at=now,
        )

    def _dispatch(
        self, c: Connection, job: JobRow, op: OperatorInfo, lease_s: float, now: float, again: bool
    ) -> Claim | None:
        detail = f"again to {op.address}: its lease ran out in flight" if again else f"to {op.address}"
        moved = self.move(
            c,
            [job.job_id],
            _S.DISPATCHED,
            now,
            detail,
            values={
                "operator": op.address,
                "lease_owner": self.owner,
                "lease_until": now + lease_s,
            },
            sources=[_S(job.state)],
            lease_free_at=now,
            count_try=True,
        )
        if not moved:
            return None  # another relayer took it first
        attempt = c.execute(
            _NEW_ATTEMPT, {"job_id": job.job_id, "operator": op.address, "started_at": now, "outcome": "sent"}
        ).inserted_primary_key
        assert attempt is not None
        return Claim(
            job.job_id,
            job.payer,
            job.model_id,
            job.deadline,
            job.request,
            op.address,
            op.endpoint,
            int(attempt[0]),
            int(job.tries) + 1,
        )

    def complete(
        self,
        claim: Claim,
        answer: str,
        input_tokens: int,
        output_tokens: int,
        result_hash: str,
        latency_ms: float,
        *,
        reported: tuple[int, int] | None = None,
        disputed: bool = False,
        detail: str | None = None,
    ) -> bool:
        """Records an operator's answer, settled for `input_tokens` and `output_tokens` (the operator
        reported `reported`; `disputed` counts a usage dispute against it, `detail` is the history's line);
        False if the job is no longer this relayer's (its lease was lost)."""
        done = Completion(
            claim, answer, input_tokens, output_tokens, result_hash, latency_ms, reported, disputed, detail
        )
        return bool(self.complete_many([done]))

    def complete_many(self, answers: Sequence[Completion]) -> list[str]:
        """Records operators' answers in one transaction (each job's move checked on its own); returns the
        jobs completed: one whose lease this relayer lost is left alone."""
        if not answers:
            return []
        now = time.time()
        completed: list[str] = []
        with self.writing() as c:
            for done in answers:
                claim = done.claim
                reported_in, reported_out = (
                    done.reported if done.reported is not None else (done.input_tokens, done.output_tokens)
                )
                completed += self.move(
                    c,
                    [claim.job_id],
                    _S.COMPLETED,
                    now,
                    done.detail or f"{done.input_tokens}+{done.output_tokens} tokens",
                    values={
                        "answer": done.answer,
                        "input_tokens": done.input_tokens,
                        "output_tokens": done.output_tokens,
                        "reported_input_tokens": reported_in,
                        "reported_output_tokens": reported_out,
                        "result_hash": done.result_hash,
                        "completed_at": now,
                        "lease_until": 0.0,
                        "reason": None,
                    },
                    sources=[_S.DISPATCHED],
                    owned=True,
                )
                c.execute(_OPERATOR_SUCCEEDED, {"op": claim.operator, "latency": done.latency_ms})
                if done.disputed:
                    c.execute(_OPERATOR_DISPUTED, {"op": claim.operator})
                    self.forget_operators()  # the dispute counts in the next choice
            c.execute(
                _FINISH_ATTEMPT,
                [
                    {"attempt": d.claim.attempt_id, "outcome": "ok", "detail": None, "latency": d.latency_ms}
                    for d in answers
                ],
            )
        return completed

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
        next try; after another failure, `RETRY_AFTER_FAILURE_S`.
        """
        now = time.time()
        reason = f"{claim.operator}: {detail}"
        self.forget_operators()  # its failure counts in the next choice
        with self.writing() as c:
            c.execute(
                _FINISH_ATTEMPT,
                {"attempt": claim.attempt_id, "outcome": outcome, "detail": detail, "latency": latency_ms},
            )
            stats: dict[str, Any] = {
                "dispatched": OPERATORS.c.dispatched + 1,
                "failed": OPERATORS.c.failed + 1,
                "last_error": detail,
            }
            if kind == "unreachable":
                stats["unreachable"] = func.coalesce(OPERATORS.c.unreachable, 0) + 1
            elif kind == "answered error":
                stats["answered_errors"] = func.coalesce(OPERATORS.c.answered_errors, 0) + 1
            c.execute(update(OPERATORS).where(OPERATORS.c.address == claim.operator).values(**stats))
            if fatal:
                values = {"reason": reason, "lease_until": 0.0}
                self.move(
                    c,
                    [claim.job_id],
                    _S.FAILED,
                    now,
                    reason,
                    values=values,
                    sources=[_S.DISPATCHED],
                    owned=True,
                )
                return
            wait_s = RETRY_AFTER_FAILURE_S
            if outcome == UNAVAILABLE:
                wait_s = unavailable_backoff(
                    int(c.execute(_UNAVAILABLE_CALLS, {"id": claim.job_id}).scalar() or 1)
                )
            later = f" in {wait_s:g} s" if outcome == UNAVAILABLE else ""
            self.move(
                c,
                [claim.job_id],
                _S.REVEALED,
                now,
                f"{reason}; to be dispatched again{later}",
                values={"reason": reason, "lease_until": now + wait_s, "operator": None},
                sources=[_S.DISPATCHED],
                owned=True,
            )

    def fail_unservable(self, chain_now: float, margin_s: float) -> list[str]:
        """Jobs waiting for an operator that could no longer be settled before their deadline even if one
        answered now (`chain_now`: the chain's time): FAILED at once, so that their payers know."""
        with self.writing() as c:
            ids = [
                str(j)
                for (j,) in c.execute(
                    select(JOBS.c.job_id).where(
                        JOBS.c.state == _S.REVEALED.value, JOBS.c.deadline < chain_now + margin_s
                    )
                )
            ]
            reason = (
                f"no operator served it in time to settle before its deadline (a settlement needs "
                f"{margin_s:g} s); the payer may refund it after the deadline"
            )
            values = {"reason": reason, "lease_until": 0.0}
            return self.move(c, ids, _S.FAILED, time.time(), reason, values=values, sources=[_S.REVEALED])

    def expire_overdue(self, now: float, margin_s: float) -> list[str]:
        """Jobs that can no longer be settled before their deadline: EXPIRED, for the payer to refund."""
        waiting = [_S.OPENED, _S.REVEALED, _S.DISPATCHED, _S.COMPLETED]
        with self.writing() as c:
            ids = [
                str(j)
                for (j,) in c.execute(
                    select(JOBS.c.job_id).where(
                        JOBS.c.state.in_([s.value for s in waiting]), JOBS.c.deadline < now + margin_s
                    )
                )
            ]
            return self.move(
                c,
                ids,
                _S.EXPIRED,
                now,
                "deadline passed unsettled: the payer may refund it",
                values={"reason": "its deadline passed unsettled"},
                sources=waiting,
            )

    def dispatch_count(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(ATTEMPTS)).scalar() or 0)


__all__ = ["ClaimStore"]
