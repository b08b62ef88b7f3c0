"""The request commitment and the payer's signatures: what a wallet, the relayer and a verifier all compute.

- A job's request is a JSON text (an OpenAI chat completion request plus a random `nonce`). Its commitment,
  `specHash`, is keccak256 of the text's UTF-8 bytes exactly as sent: no canonicalisation, so any language
  computes the same hash from the same bytes.
- The job id is `keccak256(abi.encode(payer, specHash))`, as `JobEscrow.jobIdFor`: a wallet knows it before
  it pays.
- The payer reveals the text to the relayer with an EIP-712 signature of `Reveal(jobId, specHash)`, and
  reads a job's status and answer with a signature of `ReadJob(jobId, issuedAt)`. Both domains name the
  chain id and the escrow contract, so a signature made for one job, chain or contract is worthless for
  another.
- `resultHash` (recorded on-chain at settlement) is keccak256 of the answer's UTF-8 bytes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

# The job id is the escrow's rule, written once beside the reference model that replays use.
from bme.economics.jobs import job_id_for as job_id_for
from bme.signatures import recover_address

DOMAIN_NAME = "BME Relayer"
DOMAIN_VERSION = "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
REVEAL_TYPES = {"Reveal": [{"name": "jobId", "type": "uint256"}, {"name": "specHash", "type": "bytes32"}]}
READ_TYPES = {"ReadJob": [{"name": "jobId", "type": "uint256"}, {"name": "issuedAt", "type": "uint256"}]}


def new_nonce() -> str:
    """A random request nonce: two requests with the same prompt still commit to different hashes."""
    return secrets.token_hex(16)


def request_text(
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    *,
    temperature: float = 0.0,
    seed: int | None = None,
    nonce: str | None = None,
) -> str:
    """The JSON text of a job's request, ready to hash and reveal."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "nonce": nonce or new_nonce(),
    }
    if seed is not None:
        body["seed"] = seed
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def spec_hash(text: str) -> bytes:
    """The commitment to a request text."""
    return keccak(text.encode("utf-8"))


def result_hash(answer: str) -> bytes:
    """The hash of an answer as the escrow records it at settlement."""
    return keccak(answer.encode("utf-8"))


def job_hex(job_id: int) -> str:
    """A job id as 0x-prefixed, 64-digit hex: how the relayer's API and database name jobs."""
    return f"0x{job_id:064x}"


_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_REVEAL_TYPEHASH = keccak(text="Reveal(uint256 jobId,bytes32 specHash)")
_READ_TYPEHASH = keccak(text="ReadJob(uint256 jobId,uint256 issuedAt)")


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain of one relayer deployment: the chain and the escrow contract."""

    chain_id: int
    escrow: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.escrow),
        }

    @cached_property
    def separator(self) -> bytes:
        """The EIP-712 domain separator, computed once."""
        return keccak(
            encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    _DOMAIN_TYPEHASH,
                    keccak(text=DOMAIN_NAME),
                    keccak(text=DOMAIN_VERSION),
                    self.chain_id,
                    to_checksum_address(self.escrow),
                ],
            )
        )

    def digest(self, struct_hash: bytes) -> bytes:
        return keccak(b"\x19\x01" + self.separator + struct_hash)


def reveal_message(domain: Domain, job_id: int, spec: bytes) -> bytes:
    """The EIP-712 digest a payer signs to reveal job `job_id`'s request (hashed directly: the relayer checks
    thousands a second, and `eth_account`'s generic typed-data encoder costs milliseconds each)."""
    return domain.digest(keccak(_REVEAL_TYPEHASH + _word(job_id) + _bytes32(spec)))


def read_message(domain: Domain, job_id: int, issued_at: int) -> bytes:
    """The EIP-712 digest a payer signs to read job `job_id` at `issued_at`."""
    return domain.digest(keccak(_READ_TYPEHASH + _word(job_id) + _word(issued_at)))


def _word(value: int) -> bytes:
    """A uint256 as its 32-byte ABI word; ValueError outside 0 .. 2**256 - 1."""
    if not 0 <= value < 2**256:
        raise ValueError(f"{value} is not a uint256")
    return value.to_bytes(32, "big")


def _bytes32(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError("a bytes32 value is 32 bytes")
    return bytes(value)


def typed_data(domain: Domain, primary: str, message: dict[str, Any]) -> dict[str, Any]:
    """The full EIP-712 typed data of a `Reveal` or `ReadJob`, for wallets that sign typed data
    (`eth_signTypedData_v4`); its hash is `reveal_message`/`read_message`."""
    types = REVEAL_TYPES if primary == "Reveal" else READ_TYPES
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, **types},
        "primaryType": primary,
        "domain": domain.as_dict(),
        "message": message,
    }


def sign(account: LocalAccount, digest: bytes) -> str:
    """A 0x-hex signature of an EIP-712 `digest`."""
    return "0x" + bytes(account.unsafe_sign_hash(Hash32(digest)).signature).hex()


def recover(digest: bytes, signature: str) -> str:
    """The checksummed signer of an EIP-712 `digest`; ValueError for a malformed signature."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise ValueError("the signature is not hex") from None
    if len(raw) != 65:
        raise ValueError("a signature is 65 bytes")
    try:
        return recover_address(digest, raw)
    except ValueError as exc:  # 65 bytes that are no signature: r or s out of range, no such point
        raise ValueError(f"not a valid signature ({exc})") from None
