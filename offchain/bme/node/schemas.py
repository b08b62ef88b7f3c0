"""The OpenAI wire format: parsing chat completion requests, building responses and stream chunks."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bme.node.backends import ChatMessage, ChatParams, Completion, Usage
from bme.node.errors import InvalidRequest

MAX_STOP_SEQUENCES = 4


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat completion request the node serves; other fields are ignored,
    except those that would change the answer and are not supported, which are refused."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1)
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def to_params(self) -> ChatParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return ChatParams(
            messages=tuple(
                ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text())
                for m in self.messages
            ),
            max_tokens=self.max_completion_tokens
            if self.max_completion_tokens is not None
            else self.max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=tuple(s for s in stops if s),
            seed=self.seed,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
        )


_UNSUPPORTED = {
    "tools": "tool calling",
    "functions": "function calling",
    "tool_choice": "tool calling",
    "function_call": "function calling",
    "response_format": "response formats",
    "logprobs": "log probabilities",
    "top_logprobs": "log probabilities",
    "logit_bias": "logit bias",
    "audio": "audio output",
}


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """A validated request, or InvalidRequest naming what is wrong."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request ({exc}). The body must be a JSON object."
        ) from exc
    if not isinstance(raw, dict):
        raise InvalidRequest("The body must be a JSON object.")
    for field, feature in _UNSUPPORTED.items():
        value = raw.get(field)
        if value not in (None, False, [], {}) and not (field == "response_format" and _is_plain_text(value)):
            raise InvalidRequest(f"This node does not support {feature} (`{field}`).", param=field)
    try:
        request = ChatCompletionRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"Invalid value for `{where}`: {first['msg']}.", param=where or None) from exc
    if request.n not in (None, 1):
        raise InvalidRequest("This node returns one choice per request: `n` must be 1.", param="n")
    stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"At most {MAX_STOP_SEQUENCES} stop sequences are allowed.", param="stop")
    return request


def _is_plain_text(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "text"


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_body(completion_id: str, model: str, completion: Completion) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage_body(completion.usage),
    }


class ChunkWriter:
    """Server-sent events of one streamed completion, as OpenAI's API sends them."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool) -> None:
        self._id = completion_id
        self._model = model
        self._created = int(time.time())
        self._include_usage = include_usage

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if self._include_usage:
            chunk["usage"] = usage
        return sse(chunk)

    def delta(self, delta: dict[str, str], finish_reason: str | None = None) -> bytes:
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

    def usage(self, usage: Usage) -> bytes | None:
        """The final usage chunk, when the client asked for it (`stream_options.include_usage`)."""
        return self._event([], usage_body(usage)) if self._include_usage else None


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
