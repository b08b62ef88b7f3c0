"""What simulated participants do: one dataclass per contract call, the common language of the driver and the
two backends (the reference model and the chain).

Every action names its sender by address; amounts are integers in the contracts' base units. (Plain slotted
dataclasses, not frozen ones: a replay creates one per transaction, and frozen ones cost twice as much.)
"""

from __future__ import annotations

from dataclasses import dataclass

from bme.economics.model import JobTerms, Settlement


@dataclass(slots=True)
class PushPrice:
    """The feeder pushes an oracle reading (`ManualPriceOracle.pushPrice`)."""

    sender: str
    price: int
    confidence: int
    updated_at: int


@dataclass(slots=True)
class SyncStatus:
    """A keeper records the status the oracle and the collateral ratio imply (`syncStatus`)."""

    sender: str


@dataclass(slots=True)
class TransferCmp:
    """An ERC-20 transfer of CMP."""

    sender: str
    to: str
    amount: int


@dataclass(slots=True)
class ApproveCmp:
    """An unlimited CMP approval of the BME core (`spender="bme"`) or the operator registry."""

    sender: str
    spender: str


@dataclass(slots=True)
class Register:
    """An operator stakes and lists its endpoint and models (`OperatorRegistry.register`)."""

    sender: str
    stake: int
    endpoint: str
    models: tuple[int, ...]


@dataclass(slots=True)
class BurnForJob:
    """A user burns CMP for credits that all become one job's reservation (`JobEscrow.burnForJob`)."""

    sender: str
    tokens: int
    min_credits: int
    terms: JobTerms


@dataclass(slots=True)
class OpenJob:
    """A user reserves credits from its CRD balance for a job (`JobEscrow.openJob`)."""

    sender: str
    max_credits: int
    terms: JobTerms


@dataclass(slots=True)
class Settle:
    """The relayer settles a batch of served jobs (`JobEscrow.settle`)."""

    sender: str
    items: tuple[Settlement, ...]


@dataclass(slots=True)
class Expire:
    """Anyone refunds a job past its deadline to its payer (`JobEscrow.expire`)."""

    sender: str
    job_id: int


@dataclass(slots=True)
class Redeem:
    """An operator redeems earnings for CMP (`BurnMintEquilibrium.redeem`)."""

    sender: str
    credits: int
    min_tokens: int


@dataclass(slots=True)
class Claim:
    """An operator claims its emission rewards for all finished epochs (`EmissionSchedule.claim`)."""

    sender: str


Action = (
    PushPrice
    | SyncStatus
    | TransferCmp
    | ApproveCmp
    | Register
    | BurnForJob
    | OpenJob
    | Settle
    | Expire
    | Redeem
    | Claim
)
