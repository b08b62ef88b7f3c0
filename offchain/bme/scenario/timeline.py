"""When things happen in a replay, identically on a devnet and in the reference model.

A devnet starts at `GENESIS_TIME` and the deployment mines one block per transaction, one second apart: the
BME core is its fifth transaction (its mint window starts with that block) and the job escrow its sixth (epoch
0 starts with that block). The chain runner checks these facts after deploying; the model run assumes them.

Epoch 0 is the setup epoch (the deployment, then one block that funds users and operators, approves and
registers). Scenario epoch `k` is the escrow's epoch `k + 1`, and has two blocks: one second after it starts,
the feeder's price push, the keeper's status update, expiries, late registrations, redemptions, claims and the
users' jobs, in that order; at two seconds, the relayer's settlements.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The genesis time of every scenario devnet: 2033-05-18, so that wall-clock time never overtakes the chain's
#: and each block is exactly one second after its parent unless the driver dates it. Job deadlines are uint32:
#: a scenario may last until 2106.
GENESIS_TIME = 2_000_000_000

BME_DEPLOY_BLOCK = 5
ESCROW_DEPLOY_BLOCK = 6
ACTIVITY, SETTLEMENTS = 1, 2


@dataclass(frozen=True)
class Timeline:
    """The deployment's clock facts and the epoch length."""

    epoch_genesis: int
    window_start: int
    epoch_length: int

    @property
    def setup_time(self) -> int:
        """The setup block: two seconds before epoch 0 ends, after any deployment that fits epoch 0."""
        return self.epoch_genesis + self.epoch_length - 2

    def epoch_start(self, epoch: int) -> int:
        """The start of scenario epoch `epoch`."""
        return self.epoch_genesis + (epoch + 1) * self.epoch_length

    @staticmethod
    def chain_epoch(epoch: int) -> int:
        """The escrow's epoch for scenario epoch `epoch`."""
        return epoch + 1


def reference_timeline(epoch_length: int) -> Timeline:
    """The timeline every devnet deployment produces."""
    return Timeline(GENESIS_TIME + ESCROW_DEPLOY_BLOCK, GENESIS_TIME + BME_DEPLOY_BLOCK, epoch_length)
