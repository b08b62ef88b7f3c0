"""EIP-2612 permits for CMP, signed locally."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract


def permit_typed_data(
    token_name: str,
    token_address: str,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
    chain_id: int,
) -> dict[str, Any]:
    """The EIP-712 message of an EIP-2612 permit (OpenZeppelin's ERC20Permit, domain version "1")."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": token_name,
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": token_address,
        },
        "message": {
            "owner": owner,
            "spender": spender,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def sign_permit(
    token: Contract, owner: LocalAccount, spender: str, value: int, deadline: int, chain_id: int
) -> tuple[int, bytes, bytes]:
    """(v, r, s) of `owner`'s permit for `spender` to spend `value` of `token` until `deadline`."""
    typed = permit_typed_data(
        token.functions.name().call(),
        token.address,
        owner.address,
        spender,
        value,
        token.functions.nonces(owner.address).call(),
        deadline,
        chain_id,
    )
    signed = owner.sign_typed_data(full_message=typed)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
