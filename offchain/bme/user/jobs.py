"""A user's jobs from Python: commit to a request, reveal it, pay, read the answer, verify it, refund.

    client = JobsClient(protocol, account, relayer_url)
    job = client.prepare("SmolLM2-135M-Instruct", "Name three colours.", max_tokens=64)
    client.reveal(job)                  # the request goes to the relayer, signed by the payer
    client.pay(job)                     # one transaction: permit + burn + open the job
    result = client.wait(job.job_id)    # the answer, once settled on-chain
    client.verify(job.job_id, result["answer"])  # the on-chain result hash matches the answer

Reveal before paying: then the relayer can dispatch the moment it sees the payment. Either order works.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from bme import display
from bme.chain.client import Sent
from bme.chain.deploy import Protocol
from bme.chain.failures import GasFundsTooLow
from bme.chain.signing import sign_permit
from bme.commitment import (
    Domain,
    job_hex,
    job_id_for,
    read_message,
    request_text,
    result_hash,
    reveal_message,
    sign,
    spec_hash,
)
from bme.economics.jobs import JobStatus
from bme.economics.quote import Quote
from bme.errors import BmeError, ConfigError
from bme.job_states import FINAL_STATES
from bme.user.quote import quote_job

#: How many candidates an ambiguous job id prefix lists.
SHOWN_CANDIDATES = 8


class StepFailed(BmeError):
    """A step of asking failed; the message names the step and how to recover the payment."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


@dataclass(frozen=True)
class PreparedJob:
    """A request committed to, and what paying for it costs."""

    text: str
    spec: bytes
    job_id: int
    quote: Quote

    @property
    def job_hex(self) -> str:
        return job_hex(self.job_id)


class JobsClient:
    """One wallet's view of the protocol and the relayer."""

    def __init__(
        self,
        protocol: Protocol,
        account: LocalAccount,
        relayer_url: str,
        timeout: float = 30.0,
        *,
        wallet: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.account = account
        #: The wallet's name, to name the account in messages (its address otherwise).
        self.wallet = wallet
        self.relayer_url = relayer_url.rstrip("/")
        self.domain = Domain(protocol.deployment.chain_id, protocol.deployment.escrow)
        self.http = httpx.Client(timeout=timeout)

    def prepare(
        self,
        model: str,
        prompt: str,
        *,
        max_tokens: int,
        system: str | None = None,
        seed: int | None = None,
    ) -> PreparedJob:
        """Builds the request text, its commitment and job id, and quotes the burn that pays for it."""
        quote = quote_job(self.protocol, model, max_output_tokens=max_tokens, prompt=prompt, system=system)
        return self.prepare_with(quote, prompt, max_tokens=max_tokens, system=system, seed=seed)

    def prepare_with(
        self,
        quote: Quote,
        prompt: str,
        *,
        max_tokens: int,
        system: str | None = None,
        seed: int | None = None,
    ) -> PreparedJob:
        """`prepare` with a quote in hand (for many jobs of one size, quoted once)."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        text = request_text(quote.model_name, messages, max_tokens, seed=seed)
        spec = spec_hash(text)
        return PreparedJob(text, spec, job_id_for(self.account.address, spec), quote)

    def reveal(self, job: PreparedJob) -> dict[str, Any]:
        """Sends the request text to the relayer with the payer's EIP-712 signature."""
        signature = sign(self.account, reveal_message(self.domain, job.job_id, job.spec))
        try:
            response = self.http.post(
                f"{self.relayer_url}/v1/jobs/{job.job_hex}/reveal",
                json={"request": job.text, "signature": signature},
            )
        except httpx.HTTPError as exc:
            raise StepFailed("reveal", f"the relayer at {self.relayer_url} is unreachable: {exc}") from None
        body = _json(response)
        if response.status_code != 202:
            raise StepFailed(
                "reveal", f"the relayer refused the request ({response.status_code}): {_detail(body)}"
            )
        return body

    def pay(self, job: PreparedJob, *, duration_s: int = 3600) -> Sent:
        """Burns CMP for the job in one transaction (an EIP-2612 permit instead of a separate approval)."""
        if job.quote.problems:
            raise StepFailed("pay", "; ".join(job.quote.problems))
        return self._send("pay", self._payment(job, duration_s))

    def check_pay(self, job: PreparedJob, *, duration_s: int = 3600) -> None:
        """Simulates `pay` without sending: a burn that would revert (a stale oracle, too little CMP) or a
        wallet short of ETH for its gas fails the pay step before the request is revealed to anyone."""
        if job.quote.problems:
            raise StepFailed("pay", "; ".join(job.quote.problems))
        try:
            self.protocol.client.preflight(self.account, self._payment(job, duration_s))
        except GasFundsTooLow as exc:
            raise StepFailed("pay", str(exc.for_wallet(self.wallet) if self.wallet else exc)) from None
        except BmeError as exc:
            raise StepFailed("pay", str(exc)) from None

    def _payment(self, job: PreparedJob, duration_s: int) -> Any:
        """The `burnForJobWithPermit` call that pays for `job`, its permit signed for the same deadline."""
        p, q = self.protocol, job.quote
        # From the time the payment will be judged at: on an idle chain the latest block can be minutes old,
        # which would cut the job's time short (and leave none to settle it).
        deadline = p.client.next_timestamp() + duration_s
        v, r, s = sign_permit(p.token, self.account, p.bme.address, q.burn_cmp, deadline, p.client.chain_id)
        return p.escrow.functions.burnForJobWithPermit(
            q.burn_cmp, q.burn_credits, q.model_id, job.spec, deadline, deadline, v, r, s
        )

    def _send(self, step: str, call: Any) -> Sent:
        """Sends `call` from the wallet; a failure (a revert named before any gas is spent, too little ETH for
        gas) fails `step`, naming the wallet."""
        try:
            return self.protocol.client.send(self.account, call)
        except GasFundsTooLow as exc:
            raise StepFailed(step, str(exc.for_wallet(self.wallet) if self.wallet else exc)) from None
        except BmeError as exc:
            raise StepFailed(step, str(exc)) from None

    def status(self, job_id: int, *, wait: float = 0.0, until: str = "change") -> dict[str, Any]:
        """The relayer's record of the job (state, answer, history); readable by its payer only.

        With `wait`, the relayer holds the call up to that many seconds until the job's state changes
        (`until="change"`), its answer is ready (`"answer"`) or it ends (`"final"`).
        """
        issued_at = int(time.time())
        signature = sign(self.account, read_message(self.domain, job_id, issued_at))
        try:
            response = self.http.get(
                f"{self.relayer_url}/v1/jobs/{job_hex(job_id)}",
                params={"wait": wait, "until": until} if wait else None,
                headers={"X-BME-Issued-At": str(issued_at), "X-BME-Signature": signature},
                timeout=wait + 30,
            )
        except httpx.HTTPError as exc:
            raise StepFailed("wait", f"the relayer at {self.relayer_url} is unreachable: {exc}") from None
        body = _json(response)
        if response.status_code != 200:
            raise StepFailed("wait", f"the relayer answered {response.status_code}: {_detail(body)}")
        return body

    def wait(
        self,
        job_id: int,
        *,
        until: tuple[str, ...] = FINAL_STATES,
        timeout: float = 600.0,
        on_state: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Long-polls the relayer until the job reaches one of `until` (default: settled, failed, expired)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            left = deadline - time.monotonic()
            body = self.status(job_id, wait=max(0.0, min(left, 30.0)))
            if body["state"] != last and on_state is not None:
                on_state(body)
            last = body["state"]
            if body["state"] in until or body["state"] in FINAL_STATES:
                return body
            if time.monotonic() >= deadline:
                raise StepFailed("wait", f"job {job_hex(job_id)} is still {last} after {timeout:g} s")

    def settlement(self, job_id: int) -> dict[str, Any] | None:
        """The job's `JobSettled` event on-chain, or None if it is not settled."""
        escrow = self.protocol.escrow
        logs = escrow.events.JobSettled().get_logs(
            from_block=self.protocol.deployment.first_block, argument_filters={"jobId": job_id}
        )
        if not logs:
            return None
        ev = logs[-1]
        return {**dict(ev["args"]), "tx_hash": "0x" + ev["transactionHash"].hex().removeprefix("0x")}

    def verify(self, job_id: int, answer: str) -> dict[str, Any]:
        """Checks that the result hash recorded at settlement is the hash of `answer`; returns the event."""
        settled = self.settlement(job_id)
        if settled is None:
            raise StepFailed("verify", f"job {job_hex(job_id)} has no settlement on-chain")
        if bytes(settled["resultHash"]) != result_hash(answer):
            raise StepFailed(
                "verify",
                f"the answer's hash 0x{result_hash(answer).hex()} differs from the one settled on-chain "
                f"0x{bytes(settled['resultHash']).hex()}",
            )
        return settled

    def _opened(self) -> list[Any]:
        """The `JobOpened` events the wallet paid for, oldest first."""
        return list(
            self.protocol.escrow.events.JobOpened().get_logs(
                from_block=self.protocol.deployment.first_block,
                argument_filters={"payer": self.account.address},
            )
        )

    def jobs(self) -> list[dict[str, Any]]:
        """The wallet's jobs, from the chain: id, model, reservation, deadline and on-chain status."""
        escrow = self.protocol.escrow
        out = []
        for ev in self._opened():
            job_id = int(ev["args"]["jobId"])
            status = JobStatus(escrow.functions.jobOf(job_id).call()[4])
            out.append(
                {
                    "job_id": job_hex(job_id),
                    "model_id": int(ev["args"]["modelId"]),
                    "max_credits": int(ev["args"]["maxCredits"]),
                    "tokens_burned": int(ev["args"]["tokensBurned"]),
                    "deadline": int(ev["args"]["deadline"]),
                    "status": status.name.lower(),
                    "open_tx": "0x" + ev["transactionHash"].hex().removeprefix("0x"),
                }
            )
        return out

    def find_job(self, text: str) -> int:
        """The job id `text` names: a whole id (0x and 64 hex digits), or the start of one of the wallet's
        jobs (`0x12ab`), which must name exactly one of them. Raises `ConfigError` otherwise, listing the
        candidates of an ambiguous prefix."""
        digits = text.strip().lower().removeprefix("0x")
        if not digits or len(digits) > 64 or any(c not in "0123456789abcdef" for c in digits):
            raise ConfigError(
                f"{text!r} is not a job id (0x and up to 64 hex digits; a unique prefix will do)"
            )
        if len(digits) == 64:
            job_id = int(digits, 16)
            if job_id == 0:
                raise ConfigError(f"{text!r} is not a job id (job ids are not zero)")
            return job_id
        ids = sorted({job_hex(int(ev["args"]["jobId"])) for ev in self._opened()})
        found = [j for j in ids if j.startswith("0x" + digits)]
        if len(found) == 1:
            return int(found[0], 16)
        if not found:
            raise ConfigError(
                f"no job of {self.account.address} starts with 0x{digits} "
                "(`bme jobs` lists the wallet's jobs)"
            )
        shown = ", ".join(found[:SHOWN_CANDIDATES])
        more = f" and {len(found) - SHOWN_CANDIDATES} more" if len(found) > SHOWN_CANDIDATES else ""
        raise ConfigError(f"0x{digits} is the start of {len(found)} jobs: {shown}{more}; give more digits")

    def refund(self, job_id: int) -> Sent:
        """Expires an unsettled job past its deadline: its whole reservation returns to the wallet as CRD."""
        escrow = self.protocol.escrow
        _payer, _model, deadline, _max, raw_status = escrow.functions.jobOf(job_id).call()
        status = JobStatus(raw_status)
        if status != JobStatus.OPEN:
            raise StepFailed("refund", f"job {job_hex(job_id)} is {status.name.lower()}, not open")
        now = self.protocol.client.next_timestamp()
        if now <= deadline:
            raise StepFailed(
                "refund",
                f"job {job_hex(job_id)} is open until {display.deadline(deadline, now)}: "
                "it can be refunded after its deadline",
            )
        return self._send("refund", escrow.functions.expire(job_id))

    def close(self) -> None:
        self.http.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:300]}
    return body if isinstance(body, dict) else {"detail": body}


def _detail(body: dict[str, Any]) -> str:
    return str(body.get("detail", body))
