"""The job store: every state change of a job, the ingestion checkpoint and the leases, in transactions.

Split by concern: ingestion (`ingestion`), reveals (`reveals`), dispatch records (`claims`), settlements
(`settlements`), leases (`leases`) and reads (`reads`), over a shared base whose `move` is the one function
that changes a job's state: it checks the source state against `bme.job_states.MOVES` inside the UPDATE and
records every move in the job's history. A job is recorded DISPATCHED (with its operator and a lease) before
the relayer calls the operator, and SETTLING (with its settlement transaction) before the transaction is
sent, so a restarted relayer knows what may be in flight.
"""

from __future__ import annotations

from bme.relayer.store.claims import ClaimStore
from bme.relayer.store.ingestion import CHECKPOINT, KEEP_BLOCK_HASHES, job_key
from bme.relayer.store.leases import LeaseStore
from bme.relayer.store.reads import ReadStore
from bme.relayer.store.records import (
    FIRST_UNAVAILABLE_BACKOFF_S,
    MAX_UNAVAILABLE_BACKOFF_S,
    Choice,
    Claim,
    Completion,
    IngestResult,
    LeaseLost,
    OperatorInfo,
    RevealConflict,
    RevealRecord,
    Tries,
    unavailable_backoff,
)
from bme.relayer.store.reveals import RevealStore
from bme.relayer.store.settlements import SettlementStore


class JobStore(RevealStore, ClaimStore, SettlementStore, LeaseStore, ReadStore):
    """Transactions over the relayer's database: one class, its methods grouped by concern in the mixins."""


__all__ = [
    "CHECKPOINT",
    "FIRST_UNAVAILABLE_BACKOFF_S",
    "KEEP_BLOCK_HASHES",
    "MAX_UNAVAILABLE_BACKOFF_S",
    "Choice",
    "Claim",
    "Completion",
    "IngestResult",
    "JobStore",
    "LeaseLost",
    "OperatorInfo",
    "RevealConflict",
    "RevealRecord",
    "Tries",
    "job_key",
    "unavailable_backoff",
]
