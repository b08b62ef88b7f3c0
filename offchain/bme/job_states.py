"""A job's states at the relayer, as the relayer stores them and its API reports them: one definition for the
relayer, its API and the user client (which depend on this module, not on each other).

OPENED → REVEALED → DISPATCHED → COMPLETED → SETTLING → SETTLED, or FAILED / EXPIRED from any state before
SETTLED; a failed call returns a job from DISPATCHED to REVEALED for another try.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A job's life at the relayer."""

    OPENED = "OPENED"  # paid on-chain, request not yet revealed
    REVEALED = "REVEALED"  # request received and matching specHash
    DISPATCHED = "DISPATCHED"  # sent to an operator (recorded before sending)
    COMPLETED = "COMPLETED"  # answered; waiting for a settlement batch
    SETTLING = "SETTLING"  # in a settlement transaction not yet mined
    SETTLED = "SETTLED"
    FAILED = "FAILED"  # cannot be served; the payer gets a refund by expiring it after its deadline
    EXPIRED = "EXPIRED"  # its deadline passed unsettled (or the payer expired it)


#: The states after which nothing more happens to a job.
TERMINAL: tuple[JobState, ...] = (JobState.SETTLED, JobState.FAILED, JobState.EXPIRED)
#: The same, as the strings the relayer's API reports.
FINAL_STATES: tuple[str, ...] = tuple(s.value for s in TERMINAL)
