"""Validation of a revealed request text: the subset of OpenAI's chat request a job may carry."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class InvalidJobRequest(ValueError):
    """The revealed text is not a request the relayer can dispatch; the message says why."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class JobRequest(BaseModel):
    """A job's request. Unknown fields are refused: the relayer must not forward what it cannot check."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128)
    messages: list[_Message] = Field(min_length=1, max_length=64)
    max_tokens: int = Field(ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    nonce: str = Field(min_length=8, max_length=128)


def parse_job_request(text: str, max_tokens_limit: int) -> JobRequest:
    """The request in `text`, or `InvalidJobRequest` naming the first problem."""
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise InvalidJobRequest(f"the request is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJobRequest("the request must be a JSON object")
    try:
        request = JobRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise InvalidJobRequest(f"{where}: {first['msg']}") from None
    if request.max_tokens > max_tokens_limit:
        raise InvalidJobRequest(
            f"max_tokens is {request.max_tokens}; the relayer allows at most {max_tokens_limit}"
        )
    return request
