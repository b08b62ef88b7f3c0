"""The relayer's settings: one typed model, read from `BME_RELAYER_*` environment variables and options."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Chains where blocks are final as soon as they are mined (local devnets): confirmation depth 0.
DEVNET_CHAIN_IDS = {31337, 1337}


class RelayerSettings(BaseSettings):
    """What a relayer operator configures. Every field is `BME_RELAYER_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="BME_RELAYER_", env_file=".env", extra="ignore")

    rpc_url: str = "http://127.0.0.1:8545"
    ws_url: str | None = Field(
        default=None, description="WebSocket endpoint whose new-block notifications wake the poller early."
    )
    deployment: Path = Path("deployment.json")
    database_url: str = "sqlite:///relayer.db"
    instance: str = Field(
        default_factory=socket.gethostname,
        description="This relayer's name in leases: keep it across restarts, distinct across relayers.",
    )
    confirmations: int | None = Field(
        default=None, ge=0, description="Blocks to wait before ingesting; default 0 on devnets, 3 elsewhere."
    )
    poll_interval_s: float = Field(default=1.0, gt=0)
    rpc_timeout_s: float = Field(
        default=10.0, gt=0, description="How long one JSON-RPC call may take before it counts as failed."
    )
    max_block_range: int = Field(default=2_000, ge=1)
    batch_size: int = Field(default=50, ge=1, le=500)
    batch_age_s: float = Field(default=2.0, ge=0)
    dispatch_timeout_s: float = Field(default=120.0, gt=0)
    max_tries_per_operator: int = Field(default=3, ge=1)
    concurrency: int = Field(default=64, ge=1)
    stuck_after_s: float = Field(default=30.0, gt=0)
    deadline_margin_s: float = Field(
        default=30.0,
        ge=0,
        description="The time a settlement needs to be mined: a job whose on-chain deadline is nearer is not "
        "dispatched (it fails at once), and its answer is not handed out before it settles.",
    )
    leader_ttl_s: float = Field(default=10.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)
    max_tokens_limit: int = Field(default=4096, ge=1)
    rate_per_minute: int = Field(default=120, ge=1, description="Requests per minute per address.")
    tokenizers: dict[str, Path] = Field(
        default_factory=dict,
        description="GGUF files whose tokenizer and chat template count a model's tokens, by model name "
        "(a JSON object); the embedded model's own file needs no entry. Other models' tokens are bounded.",
    )

    def confirmations_for(self, chain_id: int) -> int:
        if self.confirmations is not None:
            return self.confirmations
        return 0 if chain_id in DEVNET_CHAIN_IDS else 3
