"""`DeployConfig`'s governance settings (parameters, seed, mint limits, job duration) are applied before the
hand-over to the timelock, and leaving them out keeps the contracts' defaults."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3

from bme.chain.client import ChainClient
from bme.chain.deploy import DeployConfig, deploy_protocol, role
from bme.chain.devnet import Anvil, devnet_keys
from bme.economics.params import Parameters


def test_settings_are_applied_before_the_hand_over_and_default_otherwise() -> None:
    deployer = Account.from_key(devnet_keys(1)[0])
    params = Parameters(
        mint_spread_bps=100, cr_warn_bps=12_000, cr_halt_bps=11_000, min_mint_credits=5 * 10**6
    )
    with Anvil() as anvil:
        client = ChainClient.connect(anvil.url)
        custom = deploy_protocol(
            client,
            deployer,
            # A longest job duration at the default shortest (600 s) is set after the new shortest.
            DeployConfig(
                parameters=params,
                seed_tokens=7 * 10**18,
                mint_limit=123,
                emission_limit=456,
                max_job_duration=600,
                min_job_duration=120,
            ),
        )
        bme, escrow = custom.bme.functions, custom.escrow.functions
        assert tuple(bme.parameters().call()) == params.as_tuple()
        assert bme.seedTokens().call() == 7 * 10**18
        assert bme.mintLimitPerWindow().call() == 123
        assert bme.emissionLimitPerWindow().call() == 456
        assert (escrow.minJobDuration().call(), escrow.maxJobDuration().call()) == (120, 600)
        governor = role("GOVERNOR_ROLE")
        assert not bme.hasRole(governor, deployer.address).call()
        assert bme.hasRole(governor, Web3.to_checksum_address(custom.timelock.address)).call()

        plain = deploy_protocol(client, deployer, DeployConfig())
        assert tuple(plain.bme.functions.parameters().call()) == Parameters().as_tuple()
        assert plain.bme.functions.seedTokens().call() == 0
        assert plain.bme.functions.mintLimitPerWindow().call() == DeployConfig().schedule.mint_limit
        assert plain.bme.functions.emissionLimitPerWindow().call() == DeployConfig().schedule.mint_limit
        assert plain.bme.functions.jobEscrow().call() == plain.escrow.address
        assert plain.escrow.functions.maxJobDuration().call() == 86_400
        assert plain.escrow.functions.minJobDuration().call() == 600
