"""A job's identity and on-chain status, as the job escrow defines them (`JobEscrow.jobIdFor`,
`IJobEscrow.JobStatus`): the one definition every package uses."""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache

from bme.economics.keccak import keccak256


class JobStatus(IntEnum):
    """Mirror of the Solidity `JobStatus`: where a job is in its life on-chain."""

    NONE = 0
    OPEN = 1
    SETTLED = 2
    EXPIRED = 3


@lru_cache(maxsize=1 << 16)
def job_id_for(payer: str, spec_hash: bytes) -> int:
    """Mirror of `JobEscrow.jobIdFor`: keccak256(abi.encode(payer, specHash)).

    The ABI encoding is written out (the address left-padded to a word, the bytes32 right-padded) and recent
    ids are remembered: this is on the hot path of scenario replays, which compute each job's id twice (the
    wallet, then the escrow), where eth-abi's general encoder would cost ten times the hash.
    """
    address = bytes.fromhex(payer[2:] if payer[:2] in ("0x", "0X") else payer)
    if len(address) != 20 or len(spec_hash) > 32:
        raise ValueError(f"not an address and a bytes32: {payer!r}, {spec_hash!r}")
    return int.from_bytes(keccak256(bytes(12) + address + spec_hash.ljust(32, b"\x00")), "big")
