"""The node's wire format: parsing OpenAI chat completion requests, and every response body the node sends
(completions, stream chunks, model cards, health, errors) as a pydantic model, which the API's OpenAPI schema
shows."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bme.node.backends import ChatMessage, ChatParams, Completion, FinishReason, Usage
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


# --- responses ----------------------------------------------------------------------------------------------


class CompletionUsage(BaseModel):
    """The tokens a completion used."""

    prompt_tokens: int = Field(description="Tokens of the prompt, chat template included.")
    completion_tokens: int = Field(description="Tokens of the answer.")
    total_tokens: int = Field(description="Their sum.")

    @classmethod
    def of(cls, usage: Usage) -> CompletionUsage:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class AssistantMessage(BaseModel):
    """The answer."""

    role: Literal["assistant"] = Field(description="Always `assistant`.")
    content: str = Field(description="The answer's text.")


class CompletionChoice(BaseModel):
    """The one answer of a completion (the node returns one choice per request)."""

    index: int = Field(description="Always 0.")
    message: AssistantMessage = Field(description="The answer.")
    logprobs: None = Field(description="Always null: the node does not return log probabilities.")
    finish_reason: FinishReason = Field(
        description="`stop` when the model ended its answer (or met a stop sequence), `length` at max_tokens."
    )


class ChatCompletion(BaseModel):
    """A whole chat completion, as OpenAI's API answers it."""

    id: str = Field(description="The completion's id, `chatcmpl-` and 32 hex digits.")
    object: Literal["chat.completion"] = Field(description="Always `chat.completion`.")
    created: int = Field(description="When it was made, as Unix time in seconds.")
    model: str = Field(description="The model that answered: the one the node serves.")
    choices: list[CompletionChoice] = Field(description="The answer, as the one choice.")
    usage: CompletionUsage = Field(description="The tokens used.")


def completion_body(completion_id: str, model: str, completion: Completion) -> dict[str, Any]:
    """The JSON body of a whole completion (as the job journal records it, and the API sends it)."""
    return ChatCompletion(
        id=completion_id,
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[
            CompletionChoice(
                index=0,
                message=AssistantMessage(role="assistant", content=completion.text),
                logprobs=None,
                finish_reason=completion.finish_reason,
            )
        ],
        usage=CompletionUsage.of(completion.usage),
    ).model_dump(mode="json")


class ChunkDelta(BaseModel):
    """What a chunk adds to the answer; a field it does not add is left out."""

    role: Literal["assistant"] | None = Field(default=None, description="`assistant`, in the first chunk.")
    content: str | None = Field(default=None, description="The next piece of the answer's text.")


class ChunkChoice(BaseModel):
    """The answer's part in one chunk."""

    index: int = Field(description="Always 0.")
    delta: ChunkDelta = Field(description="What this chunk adds; empty in the finishing chunk.")
    logprobs: None = Field(description="Always null.")
    finish_reason: FinishReason | None = Field(description="Null until the finishing chunk.")


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed completion, as OpenAI's API sends it."""

    id: str = Field(description="The completion's id, the same in every chunk.")
    object: Literal["chat.completion.chunk"] = Field(description="Always `chat.completion.chunk`.")
    created: int = Field(description="When the completion started, as Unix time in seconds.")
    model: str = Field(description="The model that answers.")
    choices: list[ChunkChoice] = Field(description="The answer's part; empty in the usage chunk.")
    usage: CompletionUsage | None = Field(
        default=None,
        description="Only with `stream_options.include_usage`: null, but in the last chunk the tokens used.",
    )


class ChunkWriter:
    """Server-sent events of one streamed completion, as OpenAI's API sends them."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool) -> None:
        self._id = completion_id
        self._model = model
        self._created = int(time.time())
        self._include_usage = include_usage

    def _event(self, choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> bytes:
        chunk = ChatCompletionChunk(
            id=self._id,
            object="chat.completion.chunk",
            created=self._created,
            model=self._model,
            choices=choices,
        )
        if self._include_usage:
            chunk.usage = usage  # set, so sent, even when null
        # Unset fields are left out: `usage` without include_usage, and what a delta does not add.
        return b"data: " + chunk.model_dump_json(exclude_unset=True).encode("utf-8") + b"\n\n"

    def delta(self, delta: ChunkDelta, finish_reason: FinishReason | None = None) -> bytes:
        return self._event([ChunkChoice(index=0, delta=delta, logprobs=None, finish_reason=finish_reason)])

    def usage(self, usage: Usage) -> bytes | None:
        """The final usage chunk, when the client asked for it (`stream_options.include_usage`)."""
        return self._event([], CompletionUsage.of(usage)) if self._include_usage else None


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class ModelCard(BaseModel):
    """The model the node serves, as OpenAI's API describes a model."""

    id: str = Field(description="The model's id: what requests name in `model`.")
    object: Literal["model"] = Field(description="Always `model`.")
    created: int = Field(description="Always 0: the node does not know when the model was made.")
    owned_by: str = Field(description="Always `bme-node`.")


class ModelList(BaseModel):
    """The models the node serves: one."""

    object: Literal["list"] = Field(description="Always `list`.")
    data: list[ModelCard] = Field(description="The model the node serves.")


class NodeHealth(BaseModel):
    """The node's state; `reason` and `model_restarts` are left out when there is nothing to say."""

    status: Literal["ok", "restarting", "failed"] = Field(
        description="`ok` serving, `restarting` while its model runtime restarts, `failed` once it gave up."
    )
    backend: str = Field(
        description="`embedded` (the model runs in the node) or `upstream` (another server)."
    )
    model: str = Field(description="The model the node serves.")
    running: int = Field(description="Completions running now.")
    queued: int = Field(description="Requests waiting for a completion slot.")
    slots: int = Field(description="Completions that may run at once.")
    max_queue: int = Field(description="Requests that may wait; more are refused with 503.")
    jobs_executed: int = Field(description="Paid jobs run since the node started.")
    jobs_replayed: int = Field(description="Paid jobs asked again and answered from the job journal.")
    reason: str | None = Field(default=None, description="What is wrong, when something is.")
    model_restarts: int | None = Field(default=None, description="Restarts of the model runtime, when any.")


class NodeReadiness(BaseModel):
    """Whether a completion can start now."""

    ready: bool = Field(description="True when a completion can start now.")
    reason: str | None = Field(default=None, description="Why not, when not ready (left out otherwise).")


class ErrorDetail(BaseModel):
    """An error, as OpenAI's API describes one."""

    message: str = Field(description="What went wrong, for a person to read.")
    type: str = Field(
        description="The kind: `invalid_request_error`, `authentication_error`, `server_error`..."
    )
    param: str | None = Field(description="The request field at fault, when one is.")
    code: str | None = Field(description="A stable code, e.g. `model_not_found`, `server_busy`, `timeout`.")


class ErrorBody(BaseModel):
    """The body of every error the node answers (OpenAI's format, which OpenAI's clients raise on)."""

    error: ErrorDetail = Field(description="The error.")
