"""The relayer API's response bodies, field by field: what each route returns (and its OpenAPI schema shows).

The field names and the JSON shapes are the API's contract with its clients (`bme.user.jobs` among them): a
change here is a change of the API. Amounts follow the chain's units: credits are CRD base units (6 decimals,
micro-dollars), CMP amounts base units (18 decimals).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from bme.job_states import JobState

#: A job's state as the API reports it (PENDING: a revealed job whose payment is not ingested yet).
ReportedState: TypeAlias = JobState
#: The BME core's status by name, as `status()` numbers it.
CoreStatus: TypeAlias = Literal["Healthy", "Warning", "HaltCR", "HaltOracle"]


class ErrorBody(BaseModel):
    """The body of every refusal (4xx) and of a chain that does not answer (503); a request that fails
    FastAPI's validation (422) gets FastAPI's list of errors instead."""

    detail: str = Field(description="What was refused and why, for a person to read.")


def refusals(reasons: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that answers `ErrorBody` with each status of `reasons`, described by it."""
    return {
        status: {"model": ErrorBody, "description": f"{HTTPStatus(status).phrase}: {reason}"}
        for status, reason in reasons.items()
    }


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = Field(description="Always `ok`: the API's process is up.")


class Readiness(BaseModel):
    """Whether the relayer does its work: answered with 200 when ready, 503 otherwise.

    Besides `ready`, the fields are what the relayer's service reports; a field it does not report is left
    out of the body."""

    model_config = ConfigDict(extra="allow")

    ready: bool = Field(
        description="True when its ingestion runs and, if it leads, it polled the chain lately."
    )
    leader: bool | None = Field(
        default=None, description="Whether this relayer holds the leader lease (ingests and settles)."
    )
    seconds_since_poll: float | None = Field(
        default=None, description="Seconds since the last poll of the chain; null before the first."
    )
    jobs: dict[str, int] | None = Field(default=None, description="The number of jobs in each state.")


class RevealAccepted(BaseModel):
    """A reveal the relayer stored (or had stored: the same reveal again changes nothing)."""

    job_id: str = Field(description="The job's id, 0x and 64 hex digits.")
    payer: str = Field(description="The address that signed the reveal: the job's payer.")
    state: ReportedState = Field(
        description="The job's state now; PENDING when its payment is not ingested yet."
    )
    reason: str | None = Field(description="Why the job failed, when it did (e.g. another model than paid).")


class JobTransition(BaseModel):
    """One state a job entered."""

    state: JobState = Field(description="The state entered.")
    at: float = Field(description="When, as Unix time in seconds.")
    detail: str | None = Field(description="What caused it: the block, the operator, the failure.")


class PendingJob(BaseModel):
    """A job whose request is revealed but whose payment the relayer has not ingested yet."""

    job_id: str = Field(description="The job's id, 0x and 64 hex digits.")
    state: Literal[JobState.PENDING] = Field(description="Always PENDING.")
    reason: str = Field(description="Why the job has no other state yet.")


class JobStatus(BaseModel):
    """A paid job as the relayer knows it: its payment, its answer and its settlement so far."""

    job_id: str = Field(description="The job's id, 0x and 64 hex digits.")
    state: JobState = Field(description="The job's state at the relayer.")
    reason: str | None = Field(description="Why the job failed or expired, when it did.")
    payer: str = Field(description="The address that paid for the job.")
    model_id: int = Field(description="The model the job paid for, by its id in the price book.")
    max_credits: int = Field(description="The credits reserved for the job (CRD base units).")
    tokens_burned: str = Field(description="CMP burned to pay for the job (base units, a decimal string).")
    deadline: int = Field(description="Unix time after which an unsettled job can be refunded.")
    open_tx: str = Field(description="The transaction that paid for the job.")
    operator: str | None = Field(description="The operator the job was last dispatched to.")
    answer: str | None = Field(
        description="The model's answer, once the operator answered; withheld (null) from a job that ended "
        "unsettled, or whose deadline is too near for its settlement (`answer_withheld` says why)."
    )
    answer_withheld: str | None = Field(
        default=None, description="Why the answer is not shown though the operator answered; null otherwise."
    )
    input_tokens: int | None = Field(
        description="Prompt tokens the job is settled for: the least of the operator's report and the "
        "relayer's own count."
    )
    output_tokens: int | None = Field(
        description="Answer tokens the job is settled for: the least of the operator's report, the relayer's "
        "own count and the request's max_tokens."
    )
    reported_input_tokens: int | None = Field(
        default=None, description="Prompt tokens the operator reported."
    )
    reported_output_tokens: int | None = Field(
        default=None, description="Answer tokens the operator reported."
    )
    result_hash: str | None = Field(description="keccak256 of the answer, as settled on-chain.")
    settle_tx: str | None = Field(description="The settlement transaction, once sent.")
    charge: int | None = Field(description="Credits charged at settlement (CRD base units).")
    refund: int | None = Field(description="Credits refunded at settlement or expiry (CRD base units).")
    history: list[JobTransition] = Field(description="Every state the job entered, oldest first.")


class OperatorRecord(BaseModel):
    """An operator of the registry and this relayer's record of its service."""

    address: str = Field(description="The operator's address.")
    endpoint: str = Field(description="The base URL of its node, as registered.")
    models: list[int] = Field(description="The ids of the models it serves.")
    active: bool = Field(description="Whether it is bonded and takes jobs.")
    jailed: bool = Field(description="Whether it is jailed (slashed and barred from jobs).")
    dispatched: int = Field(description="Calls this relayer made to it.")
    succeeded: int = Field(description="Calls it answered.")
    failed: int = Field(description="Calls that failed: unreachable plus answered errors.")
    unreachable: int = Field(description="Failed calls that got no answer (connection refused, timeout).")
    answered_errors: int = Field(description="Failed calls it answered with an error.")
    usage_disputes: int = Field(
        default=0,
        description="Answers whose reported usage exceeded the relayer's own count beyond the tolerance "
        "(2 tokens + 2 %); weighed like failed calls when choosing operators.",
    )
    latency_ewma_ms: float = Field(description="Its answers' latency, moving average, in milliseconds.")
    last_error: str | None = Field(description="The last failure's reason, starting with its kind.")


class PricedModel(BaseModel):
    """A model of the price book."""

    model_config = ConfigDict(protected_namespaces=())

    model_id: int = Field(description="The model's id on-chain.")
    name: str = Field(description="The name requests ask for.")
    input_price_per_million: int = Field(description="Credits per million prompt tokens (CRD base units).")
    output_price_per_million: int = Field(description="Credits per million answer tokens (CRD base units).")
    listed: bool = Field(description="False once delisted: its open jobs still settle, new ones are refused.")


class JobQuote(BaseModel):
    """What a job costs: its reservation and expected use, in credits and in CMP at the oracle's price.
    Prices are dollars per CMP as WAD (18 decimals)."""

    model_config = ConfigDict(protected_namespaces=())

    model_id: int = Field(description="The model's id in the price book.")
    model_name: str = Field(description="The model's name.")
    input_price_per_million: int = Field(description="Credits per million prompt tokens.")
    output_price_per_million: int = Field(description="Credits per million answer tokens.")
    prompt_tokens: int = Field(description="Prompt tokens priced.")
    prompt_tokens_exact: bool = Field(description="Whether the prompt tokens were counted, not estimated.")
    max_output_tokens: int = Field(description="The most answer tokens the job allows.")
    expected_output_tokens: int = Field(description="Answer tokens expected.")
    max_credits: int = Field(description="The most the job can be charged: its reservation.")
    expected_credits: int = Field(description="What the job is expected to be charged.")
    oracle_price: int = Field(description="The oracle's CMP price (WAD).")
    confidence: int = Field(description="The oracle's confidence band (WAD).")
    confidence_multiplier: int = Field(description="Confidence bands the burn price is set below the price.")
    burn_price: int = Field(description="The price a burn gets: the oracle price less the bands (WAD).")
    mint_spread_bps: int = Field(description="The mint spread, in basis points.")
    min_mint_credits: int = Field(description="The fewest credits a burn may mint.")
    max_cmp: int = Field(description="CMP whose burn covers `max_credits`.")
    expected_cmp: int = Field(description="CMP whose burn covers `expected_credits`.")
    burn_cmp: int = Field(
        description="CMP the job's burn must burn (more than `max_cmp` under the minimum mint)."
    )
    burn_credits: int = Field(description="Credits the burn reserves; the unused part is refunded.")
    spread_cost_cmp: int = Field(description="Of `burn_cmp`, what the mint spread takes.")
    confidence_cost_cmp: int = Field(description="Of `burn_cmp`, what the confidence bands take.")
    problems: list[str] = Field(description="Why a burn would revert now; empty when it would go through.")


class ProtocolFigures(BaseModel):
    """The protocol's figures at one block."""

    block: int = Field(description="The block the figures are read at.")
    cmp_supply: int = Field(description="CMP's total supply.")
    cmp_burned: int = Field(description="CMP burned for credits since the deployment.")
    cmp_reissued: int = Field(description="CMP minted by redemptions against remint credits, in all.")
    cmp_newly_issued: int = Field(description="CMP minted by redemptions beyond the remint credits, in all.")
    cmp_emitted: int = Field(description="CMP released by the emission schedule.")
    remint_credits: int = Field(
        description="CMP burned and not yet re-issued: what later redemptions re-issue against."
    )
    outstanding_credits: int = Field(
        description="Credits not yet redeemed: free balances, job reservations and operators' earnings."
    )
    collateral_ratio_bps: int | None = Field(
        description="The collateral ratio in basis points; null while no credits are outstanding."
    )
    status: CoreStatus = Field(description="The BME core's status.")
    current_epoch: int = Field(description="The job escrow's current epoch.")
    epoch_length: int = Field(description="An epoch's length, in seconds.")
