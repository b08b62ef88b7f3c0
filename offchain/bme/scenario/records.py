"""The per-epoch series of a run: exact records (integers in base units, what the chain and the model must
agree on), and the tidy table researchers read (whole units, one row per epoch, one column per variable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bme.economics.status import STATUS_NAMES

if TYPE_CHECKING:
    import pandas as pd

CMP_DECIMALS, CRD_DECIMALS, WAD_DECIMALS = 18, 6, 18


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """One epoch: the state read at its end, its flows (differences from the previous epoch's end) and what
    the participants did. Amounts are base units: CMP and prices 18 decimals, credits (CRD, dollars) 6."""

    epoch: int
    start: int  # seconds from the scenario's start
    market_price: int
    price_pushed: bool
    oracle_price: int
    oracle_confidence: int
    oracle_age: int  # seconds since the oracle's reading, at the epoch's settlements; -1 without a reading
    status: int
    collateral_ratio_bps: int | None  # None while no credits are outstanding
    cmp_supply: int
    supply_change: int
    burned: int
    reissued: int
    new_issuance: int
    emission_released: int
    rewards_claimed: int
    total_burned: int
    total_reissued: int
    total_new_issuance: int
    total_emission: int
    total_rewards_claimed: int
    remint_credits: int
    seed_tokens: int
    outstanding_credits: int
    user_credits: int
    escrowed_credits: int
    operator_earnings: int
    epoch_work: int
    epoch_emission: int  # what the schedule emits for this epoch (0 without rewardable stake)
    credits_redeemed: int
    staked: int
    unclaimed_emission: int
    user_cmp: int
    operator_cmp: int
    treasury_cmp: int
    wash_burned: int  # CMP wash traders burned for the jobs they paid for themselves
    wash_rewards: int  # emission rewards wash traders claimed
    wash_redeemed: int  # CMP wash traders received for redeeming their earnings
    idle_rewards: int  # emission rewards idle stakers (the control: wash with 0 dollars) claimed
    wash_earnings: int  # wash traders' earnings not yet redeemed (CRD), at the epoch's end
    jobs_requested: int
    jobs_opened: int
    jobs_rejected: int
    jobs_settled: int
    jobs_unserved: int
    jobs_expired: int
    burns: int
    redemptions: int
    claims: int
    transactions: int
    failed_transactions: int


#: Record fields shown in whole CMP, in dollars, and as counts.
_CMP: tuple[str, ...] = (
    "cmp_supply",
    "supply_change",
    "burned",
    "reissued",
    "new_issuance",
    "emission_released",
)
_CMP += ("rewards_claimed", "total_burned", "total_reissued", "total_new_issuance", "total_emission")
_CMP += ("total_rewards_claimed", "remint_credits", "seed_tokens", "epoch_emission", "staked")
_CMP += ("unclaimed_emission", "user_cmp", "operator_cmp", "treasury_cmp")
_CMP += ("wash_burned", "wash_rewards", "wash_redeemed", "idle_rewards")
_USD: tuple[str, ...] = (
    "outstanding_credits",
    "user_credits",
    "escrowed_credits",
    "operator_earnings",
    "epoch_work",
)
_USD += ("credits_redeemed", "wash_earnings")
_COUNTS: tuple[str, ...] = (
    "jobs_requested",
    "jobs_opened",
    "jobs_rejected",
    "jobs_settled",
    "jobs_unserved",
    "jobs_expired",
)
_COUNTS += ("burns", "redemptions", "claims", "transactions", "failed_transactions")


def table_row(r: EpochRecord) -> dict[str, Any]:
    """One tidy row: amounts in whole CMP or dollars (floats), the status by name, the ratio as a fraction."""
    row: dict[str, Any] = {
        "epoch": r.epoch,
        "day": r.start / 86_400,
        "price_usd": r.market_price / 10**WAD_DECIMALS,
        "price_pushed": r.price_pushed,
        "oracle_price_usd": r.oracle_price / 10**WAD_DECIMALS,
        "oracle_confidence_usd": r.oracle_confidence / 10**WAD_DECIMALS,
        "oracle_age_s": r.oracle_age,
        "status": STATUS_NAMES.get(r.status, str(r.status)),
        "collateral_ratio": float("nan")
        if r.collateral_ratio_bps is None
        else r.collateral_ratio_bps / 10_000,
    }
    for name in _CMP:
        row[name] = getattr(r, name) / 10**CMP_DECIMALS
    row["minted"] = (r.reissued + r.new_issuance + r.emission_released) / 10**CMP_DECIMALS
    row["net_burn"] = (r.burned - r.reissued - r.new_issuance - r.emission_released) / 10**CMP_DECIMALS
    for name in _USD:
        row[name] = getattr(r, name) / 10**CRD_DECIMALS
    for name in _COUNTS:
        row[name] = getattr(r, name)
    return row


def wash_summary(table: pd.DataFrame, washers: int, idlers: int) -> dict[str, float]:
    """What wash trading returned, in US dollars per epoch and per operator, each flow valued at its epoch's
    market price: the emission rewards wash traders claimed plus the CMP their redemptions paid, plus the
    earnings still unredeemed at the end at their face value in dollars (the last epoch's wash is redeemed
    only in the next; face value is more than a redemption pays, so this errs in the trader's favour), less
    the CMP they burned for the jobs they paid for themselves. Nothing else: not their stake, not rewards
    still in the challenge window at the end. With idle stakers (the control: the same option with 0 dollars)
    also their rewards, and the excess: what washing returned above staking and doing nothing."""
    if table.empty or washers == 0:
        return {}
    epochs = len(table)
    price = table["price_usd"]
    gain = (table["wash_rewards"] + table["wash_redeemed"] - table["wash_burned"]) * price
    left = float(table["wash_earnings"].iloc[-1])
    out = {
        "wash_traders": float(washers),
        "wash_burned_usd_per_epoch": float((table["wash_burned"] * price).sum()) / epochs / washers,
        "wash_rewards_usd_per_epoch": float((table["wash_rewards"] * price).sum()) / epochs / washers,
        "wash_redeemed_usd_per_epoch": float((table["wash_redeemed"] * price).sum()) / epochs / washers,
        "wash_unredeemed_usd_at_end": left / washers,
        "wash_return_usd_per_epoch": (float(gain.sum()) + left) / epochs / washers,
    }
    if idlers:
        idle = float((table["idle_rewards"] * price).sum()) / epochs / idlers
        out["idle_return_usd_per_epoch"] = idle
        out["wash_excess_usd_per_epoch"] = out["wash_return_usd_per_epoch"] - idle
    return out


def records_table(records: list[EpochRecord]) -> pd.DataFrame:
    """The tidy per-epoch table of a run."""
    import pandas as pd

    return pd.DataFrame([table_row(r) for r in records])


def record_dicts(records: list[EpochRecord]) -> list[dict[str, Any]]:
    """The exact records as plain dictionaries (to ship between processes)."""
    return [asdict(r) for r in records]


def records_from_dicts(rows: list[dict[str, Any]]) -> list[EpochRecord]:
    return [EpochRecord(**row) for row in rows]
