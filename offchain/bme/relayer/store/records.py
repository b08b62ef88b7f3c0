"""What the store hands to its callers: claims, dispatch decisions, ingestion results, operator views."""

from __future__ import annotations

from dataclasses import dataclass, field

from bme.retry import backoff_delay


class LeaseLost(Exception):
    """This relayer no longer holds the lease its write needs: another relayer took over."""


class RevealConflict(Exception):
    """A different request was already revealed for the job."""


#: The wait before a job's next try after its first call that found the node down or busy; it doubles with
#: each such call, up to `MAX_UNAVAILABLE_BACKOFF_S`.
FIRST_UNAVAILABLE_BACKOFF_S = 0.25
MAX_UNAVAILABLE_BACKOFF_S = 15.0
#: The wait before a job's next try after any other failed call.
RETRY_AFTER_FAILURE_S = 0.2
#: How long a job with no operator to take it waits before it is looked at again.
NO_OPERATOR_WAIT_S = 2.0


def unavailable_backoff(failures: int) -> float:
    """Seconds before the next try of a job whose calls found the node down or busy `failures` times."""
    return backoff_delay(failures, FIRST_UNAVAILABLE_BACKOFF_S, MAX_UNAVAILABLE_BACKOFF_S)


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


@dataclass(frozen=True)
class Completion:
    """An operator's answer to a claim, to be recorded (`ClaimStore.complete_many`)."""

    claim: Claim
    answer: str
    input_tokens: int
    output_tokens: int
    result_hash: str
    latency_ms: float
    #: The counts the operator reported, when they differ from those settled (`input_tokens`,
    #: `output_tokens`); a usage dispute to count against the operator; the history's line.
    reported: tuple[int, int] | None = None
    disputed: bool = False
    detail: str | None = None


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


@dataclass(frozen=True)
class RevealRecord:
    """A verified reveal to store: the request text a payer signed for a job (the `reveals` table's row)."""

    job_id: str
    payer: str
    spec_hash: str
    model: str
    request: str
    signature: str
    received_at: float
