"""`ape run deploy`, as the README documents it, on a running devnet: a usable protocol, not a bare one.

The relayer named with `--relayer` may settle, the feeder pushed the first price, the devnet faucet holds its
reserve for `bme devnet fund`, and the deployment file works with the `bme` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from bme import devnet_ops
from bme.chain.artifacts import project_root
from bme.chain.client import ChainClient
from bme.chain.deploy import Deployment, Protocol, role
from bme.chain.devnet import Anvil
from bme.stack import bme_command


def test_the_ape_script_deploys_funds_and_authorises_on_a_running_devnet(tmp_path: Path) -> None:
    relayer = Account.create().address
    out = tmp_path / "deployment.json"
    with Anvil() as anvil:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "ape"),
                "run",
                "deploy",
                "--network",
                anvil.url,
                "--relayer",
                relayer,
                "--out",
                str(out),
            ],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"relayers allowed to settle: {relayer}" in done.stdout
        d = Deployment.load(out)
        p = Protocol.at(ChainClient.connect(anvil.url), d)
        assert p.escrow.functions.hasRole(role("RELAYER_ROLE"), relayer).call()
        price, updated_at, _confidence = p.oracle.functions.latestPrice().call()
        assert price == 10**18 and updated_at > 0
        faucet = devnet_ops.faucet_account().address
        assert p.token.functions.balanceOf(faucet).call() == devnet_ops.FAUCET_CMP

        someone = Account.create().address
        env = {**os.environ, "BME_RPC_URL": anvil.url, "BME_DEPLOYMENT": str(out)}
        fund = subprocess.run(
            [*bme_command(), "devnet", "fund", someone, "--cmp", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert fund.returncode == 0, fund.stderr
        assert p.token.functions.balanceOf(someone).call() == 5 * 10**18
    assert json.loads(out.read_text())["chain_id"] == 31337
