"""CMP (ComputeToken) and CRD (ComputeCredit): who may mint and burn, EIP-2612 permits, and the credit's
transfer restriction."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from tests.conftest import CMP, CRD, GENESIS, SUPPLY, Deployed
from tests.contracts.helpers import (
    ZERO_ADDRESS,
    Governance,
    advance,
    event_args,
    head_time,
    normalised,
    reverts,
    sign_permit,
    terms,
)

# Also on the in-process provider (py-evm), a second EVM beside anvil: see `make test`.
pytestmark = pytest.mark.inprocess

# ---------------------------------------------------------------- CMP


def test_token_metadata_is_cmp_with_18_decimals(protocol: Deployed) -> None:
    token = protocol.token
    assert token.name() == "Compute Token"
    assert token.symbol() == "CMP"
    assert token.decimals() == 18
    assert token.totalSupply() == SUPPLY
    assert [token.balanceOf(u) for u in protocol.users] == [GENESIS] * 4


def test_token_minter_role_is_held_by_the_bme_core_only(protocol: Deployed) -> None:
    token, minter = protocol.token, protocol.token.MINTER_ROLE()
    assert minter == keccak(text="MINTER_ROLE")
    assert token.hasRole(minter, protocol.bme)
    # The deployer minted the genesis allocation, then renounced the role.
    for account in (protocol.deployer, protocol.timelock, protocol.escrow, *protocol.users):
        assert not token.hasRole(minter, account)
    assert token.hasRole(token.DEFAULT_ADMIN_ROLE(), protocol.timelock)
    assert not token.hasRole(token.DEFAULT_ADMIN_ROLE(), protocol.deployer)


@pytest.mark.parametrize("caller", ["user", "deployer"])
def test_token_mint_by_account_without_minter_role_reverts(protocol: Deployed, caller: str) -> None:
    account = protocol.users[0] if caller == "user" else protocol.deployer
    with reverts(
        protocol.token.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=protocol.token.MINTER_ROLE(),
    ):
        protocol.token.mint(account, CMP, sender=account)
    assert protocol.token.totalSupply() == SUPPLY


def test_token_minter_cannot_be_granted_by_governance(protocol: Deployed, gov: Governance) -> None:
    """The minters are fixed at deployment (`test_limits.py` tries every route); the BME core mints."""
    token, minter, admin = protocol.token, protocol.token.MINTER_ROLE(), protocol.token.MINTER_ADMIN_ROLE()
    assert token.getRoleAdmin(minter) == admin == keccak(text="MINTER_ADMIN_ROLE")
    with reverts(token.AccessControlUnauthorizedAccount, account=protocol.timelock, neededRole=admin):
        gov.execute(token.grantRole, minter, protocol.users[3])
    assert token.totalSupply() == SUPPLY


def test_token_burn_reduces_balance_and_supply(protocol: Deployed) -> None:
    token, user = protocol.token, protocol.users[0]
    tx = token.burn(7 * CMP, sender=user)
    assert event_args(tx, token.Transfer) == [
        normalised(**{"from": user, "to": ZERO_ADDRESS, "value": 7 * CMP})
    ]
    assert token.balanceOf(user) == GENESIS - 7 * CMP
    assert token.totalSupply() == SUPPLY - 7 * CMP


def test_token_burn_more_than_balance_reverts(protocol: Deployed, wallet: Any) -> None:
    protocol.token.transfer(wallet, 3 * CMP, sender=protocol.users[0])
    with reverts(protocol.token.ERC20InsufficientBalance, sender=wallet, balance=3 * CMP, needed=3 * CMP + 1):
        protocol.token.burn(3 * CMP + 1, sender=wallet)


def test_token_burn_from_spends_the_allowance(protocol: Deployed) -> None:
    token, owner, spender = protocol.token, protocol.users[0], protocol.users[1]
    token.approve(spender, 30 * CMP, sender=owner)
    token.burnFrom(owner, 20 * CMP, sender=spender)
    assert token.allowance(owner, spender) == 10 * CMP
    assert token.balanceOf(owner) == GENESIS - 20 * CMP
    assert token.balanceOf(spender) == GENESIS
    assert token.totalSupply() == SUPPLY - 20 * CMP


def test_token_burn_from_beyond_the_allowance_reverts(protocol: Deployed) -> None:
    token, owner, spender = protocol.token, protocol.users[0], protocol.users[1]
    token.approve(spender, 5 * CMP, sender=owner)
    with reverts(token.ERC20InsufficientAllowance, spender=spender, allowance=5 * CMP, needed=6 * CMP):
        token.burnFrom(owner, 6 * CMP, sender=spender)
    assert token.totalSupply() == SUPPLY


def test_token_domain_separator_is_eip712_of_name_version_chain_and_address(
    protocol: Deployed, chain: Any
) -> None:
    token = protocol.token
    typehash = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [typehash, keccak(text="Compute Token"), keccak(text="1"), chain.chain_id, token.address],
        )
    )
    assert token.DOMAIN_SEPARATOR() == expected


def test_token_permit_sets_the_allowance_and_uses_the_nonce(
    protocol: Deployed, chain: Any, wallet: Any
) -> None:
    token, spender, relayer = protocol.token, protocol.users[1], protocol.users[2]
    token.transfer(wallet, 10 * CMP, sender=protocol.users[0])
    deadline = head_time(chain) + 600
    v, r, s = sign_permit(token, wallet, spender, 4 * CMP, deadline, chain.chain_id)

    # Anyone may submit the signed permit: the owner needs no gas for the approval.
    tx = token.permit(wallet, spender, 4 * CMP, deadline, v, r, s, sender=relayer)

    assert event_args(tx, token.Approval) == [normalised(owner=wallet, spender=spender, value=4 * CMP)]
    assert token.allowance(wallet, spender) == 4 * CMP
    assert token.nonces(wallet) == 1
    token.transferFrom(wallet, spender, 4 * CMP, sender=spender)
    assert token.balanceOf(wallet) == 6 * CMP
    assert token.allowance(wallet, spender) == 0


def test_token_permit_replayed_reverts(protocol: Deployed, chain: Any, wallet: Any) -> None:
    token, spender = protocol.token, protocol.users[1]
    deadline = head_time(chain) + 600
    v, r, s = sign_permit(token, wallet, spender, CMP, deadline, chain.chain_id)
    token.permit(wallet, spender, CMP, deadline, v, r, s, sender=spender)
    # The nonce moved on: the same signature now recovers to some other address.
    with reverts(token.ERC2612InvalidSigner, owner=wallet):
        token.permit(wallet, spender, CMP, deadline, v, r, s, sender=spender)
    assert token.nonces(wallet) == 1


def test_token_permit_signed_by_another_key_reverts(protocol: Deployed, chain: Any, wallet: Any) -> None:
    token, victim, spender = protocol.token, protocol.users[0], protocol.users[1]
    deadline = head_time(chain) + 600
    v, r, s = sign_permit(token, victim, spender, CMP, deadline, chain.chain_id, signer=wallet)
    with reverts(token.ERC2612InvalidSigner, signer=wallet, owner=victim):
        token.permit(victim, spender, CMP, deadline, v, r, s, sender=spender)
    assert token.allowance(victim, spender) == 0
    assert token.nonces(victim) == 0


def test_token_permit_past_its_deadline_reverts(protocol: Deployed, chain: Any, wallet: Any) -> None:
    token, spender = protocol.token, protocol.users[1]
    deadline = head_time(chain) + 60
    v, r, s = sign_permit(token, wallet, spender, CMP, deadline, chain.chain_id)
    advance(chain, 61)
    with reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(wallet, spender, CMP, deadline, v, r, s, sender=spender)
    assert token.nonces(wallet) == 0


# ---------------------------------------------------------------- CRD


def test_credit_metadata_has_6_decimals(protocol: Deployed) -> None:
    credit = protocol.credit
    assert credit.name() == "Compute Credit"
    assert credit.symbol() == "CRD"
    assert credit.decimals() == 6
    assert credit.totalSupply() == 0


def test_credit_roles_are_held_by_the_protocol_contracts(protocol: Deployed) -> None:
    credit = protocol.credit
    minter, protocol_role = credit.MINTER_ROLE(), credit.PROTOCOL_ROLE()
    for contract in (protocol.bme, protocol.escrow):
        assert credit.hasRole(minter, contract)
        # They hold credits in their own accounting: no transfer ever goes to or from them.
        assert not credit.hasRole(protocol_role, contract)
    for account in (protocol.deployer, protocol.timelock, *protocol.users):
        assert not credit.hasRole(minter, account)
        assert not credit.hasRole(protocol_role, account)
        assert not credit.hasRole(credit.MINTER_ADMIN_ROLE(), account)


def test_credit_transfer_between_users_reverts(protocol: Deployed, fresh_price: int) -> None:
    a, b = protocol.users[0], protocol.users[1]
    protocol.bme.burn(100 * CMP, 0, sender=a)
    with reverts(protocol.credit.ComputeCreditTransferRestricted, **{"from": a, "to": b}):
        protocol.credit.transfer(b, CRD, sender=a)
    assert protocol.credit.balanceOf(a) == 99_750_000
    assert protocol.credit.balanceOf(b) == 0


def test_credit_transfer_from_between_users_reverts_despite_an_allowance(
    protocol: Deployed, fresh_price: int
) -> None:
    a, b, c = protocol.users[0], protocol.users[1], protocol.users[2]
    protocol.bme.burn(100 * CMP, 0, sender=a)
    protocol.credit.approve(b, 10 * CRD, sender=a)
    with reverts(protocol.credit.ComputeCreditTransferRestricted, **{"from": a, "to": c}):
        protocol.credit.transferFrom(a, c, CRD, sender=b)
    assert protocol.credit.balanceOf(a) == 99_750_000


def test_credit_transfer_to_and_from_a_protocol_contract_is_allowed(
    protocol: Deployed, gov: Governance, fresh_price: int
) -> None:
    credit, user, other = protocol.credit, protocol.users[0], protocol.users[1]
    vault = protocol.users[3]  # stands in for a future protocol contract
    protocol.bme.burn(100 * CMP, 0, sender=user)
    gov.execute(credit.grantRole, credit.PROTOCOL_ROLE(), vault)

    credit.transfer(vault, 10 * CRD, sender=user)
    credit.transfer(other, 4 * CRD, sender=vault)

    assert credit.balanceOf(user) == 89_750_000
    assert credit.balanceOf(vault) == 6 * CRD
    assert credit.balanceOf(other) == 4 * CRD
    assert credit.totalSupply() == 99_750_000


@pytest.mark.parametrize("caller", ["user", "deployer"])
def test_credit_mint_by_account_without_minter_role_reverts(protocol: Deployed, caller: str) -> None:
    account = protocol.users[0] if caller == "user" else protocol.deployer
    with reverts(
        protocol.credit.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=protocol.credit.MINTER_ROLE(),
    ):
        protocol.credit.mint(account, CRD, sender=account)
    assert protocol.credit.totalSupply() == 0


def test_credit_burn_from_by_account_without_minter_role_reverts(
    protocol: Deployed, fresh_price: int
) -> None:
    victim, attacker = protocol.users[0], protocol.users[1]
    protocol.bme.burn(100 * CMP, 0, sender=victim)
    with reverts(
        protocol.credit.AccessControlUnauthorizedAccount,
        account=attacker,
        neededRole=protocol.credit.MINTER_ROLE(),
    ):
        protocol.credit.burnFrom(victim, CRD, sender=attacker)
    assert protocol.credit.balanceOf(victim) == 99_750_000


def test_credit_mint_and_burn_from_by_minter_role(protocol: Deployed, fresh_price: int, chain: Any) -> None:
    """The two minters in their own flows: the BME core mints a burn's credits, and the escrow burns a payer's
    credits for a job without any allowance (it acts for the payer, who called it)."""
    p, credit, holder = protocol, protocol.credit, protocol.users[0]
    tx = p.bme.burn(100 * CMP, 0, sender=holder)
    assert event_args(tx, credit.Transfer) == [
        normalised(**{"from": ZERO_ADDRESS, "to": holder, "value": 99_750_000})
    ]
    assert credit.allowance(holder, p.escrow) == 0
    tx = p.escrow.openJob(2 * CRD, terms(b"\x01" * 32, head_time(chain) + 3600, model=1), sender=holder)
    assert event_args(tx, credit.Transfer) == [
        normalised(**{"from": holder, "to": ZERO_ADDRESS, "value": 2 * CRD})
    ]

    assert credit.balanceOf(holder) == 97_750_000
    assert credit.totalSupply() == 97_750_000
