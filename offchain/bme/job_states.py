"""A job's states at the relayer and the moves between them: one definition for the relayer's store, its API
and the user client (which depend on this module, not on each other).

    PENDING ─▶ OPENED ─▶ REVEALED ─▶ DISPATCHED ─▶ COMPLETED ─▶ SETTLING ─▶ SETTLED
    (revealed,  (paid,    (request    (sent to an   (answered)   (in a settlement
     not paid)   not       matches)    operator)                  transaction)
                 revealed)

FAILED and EXPIRED end a job from any state before SETTLED. A failed call returns a job from DISPATCHED
to REVEALED for another try; a job whose lease ran out is sent again (DISPATCHED to DISPATCHED); a
settlement that is dropped returns its jobs to COMPLETED; a completed job whose payment a reorganisation
took away goes to the back of the settlement queue (COMPLETED to COMPLETED); a closing block reorganised
away reopens the job. Every move, self-moves included, is recorded in the job's history.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A job's life at the relayer."""

    PENDING = "PENDING"  # request revealed, payment not (or no longer) ingested
    OPENED = "OPENED"  # paid on-chain, request not yet revealed
    REVEALED = "REVEALED"  # request received and matching specHash
    DISPATCHED = "DISPATCHED"  # sent to an operator (recorded before sending)
    COMPLETED = "COMPLETED"  # answered; waiting for a settlement batch
    SETTLING = "SETTLING"  # in a settlement transaction not yet mined
    SETTLED = "SETTLED"
    FAILED = "FAILED"  # cannot be served; the payer gets a refund by expiring it after its deadline
    EXPIRED = "EXPIRED"  # its deadline passed unsettled (or the payer expired it)


_S = JobState

#: Every allowed move, by source state. A job enters the store as PENDING (revealed first) or OPENED (paid
#: first); a reorganisation that takes its payment away sends an unserved job back to PENDING.
MOVES: dict[JobState, frozenset[JobState]] = {
    _S.PENDING: frozenset({_S.OPENED}),
    _S.OPENED: frozenset({_S.REVEALED, _S.FAILED, _S.EXPIRED, _S.SETTLED, _S.PENDING}),
    _S.REVEALED: frozenset({_S.DISPATCHED, _S.FAILED, _S.EXPIRED, _S.SETTLED, _S.PENDING}),
    _S.DISPATCHED: frozenset({_S.DISPATCHED, _S.COMPLETED, _S.REVEALED, _S.FAILED, _S.EXPIRED, _S.SETTLED}),
    _S.COMPLETED: frozenset({_S.COMPLETED, _S.SETTLING, _S.SETTLED, _S.FAILED, _S.EXPIRED}),
    _S.SETTLING: frozenset({_S.SETTLED, _S.COMPLETED, _S.EXPIRED}),
    # Closed on-chain, until a reorganisation takes the closing block away.
    _S.SETTLED: frozenset({_S.COMPLETED, _S.REVEALED, _S.OPENED}),
    _S.EXPIRED: frozenset({_S.COMPLETED, _S.REVEALED, _S.OPENED}),
    # Failed here, still open on-chain until its payer (or anyone) expires it.
    _S.FAILED: frozenset({_S.EXPIRED, _S.SETTLED}),
}

#: The states a job may move to `state` from.
SOURCES: dict[JobState, frozenset[JobState]] = {
    to: frozenset(src for src, targets in MOVES.items() if to in targets) for to in JobState
}

#: The states after which nothing more happens to a job (short of a reorganisation).
TERMINAL: tuple[JobState, ...] = (JobState.SETTLED, JobState.FAILED, JobState.EXPIRED)
#: The same, as the strings the relayer's API reports.
FINAL_STATES: tuple[str, ...] = tuple(s.value for s in TERMINAL)


class IllegalMove(ValueError):
    """A move the state machine does not allow (a bug in the caller, never an outside party's doing)."""


def check_move(source: JobState | str, target: JobState | str) -> None:
    """Raises `IllegalMove` unless a job may move from `source` to `target`."""
    if JobState(target) not in MOVES[JobState(source)]:
        raise IllegalMove(f"a job cannot move from {source} to {target}")
