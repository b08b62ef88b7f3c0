"""What the HTTP layer needs from whatever produces completions, and the values that cross that line.

Two implementations: `bme.node.embedded.EmbeddedBackend` (llama-cpp-python in supervised worker processes) and
`bme.node.upstream.UpstreamBackend` (any OpenAI-compatible server over HTTP). `build_backend` picks one
from the settings.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from bme.node.settings import NodeSettings

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class ChatParams:
    """A chat completion request, validated, in the node's own terms (no HTTP, no wire format)."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def prompt_chars(self) -> int:
        return sum(len(message.content) for message in self.messages)


@dataclass(frozen=True)
class PreparedChat:
    """A request a backend has accepted: its prompt fits and its completion budget is fixed."""

    params: ChatParams
    max_tokens: int
    prompt_tokens: int | None = None
    """Exact prompt size when the backend can count it before running (embedded); None for upstream."""
    prompt_token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts the user is charged for."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TextDelta:
    """A piece of the completion's text, in order."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The last event of a completion."""

    finish_reason: FinishReason
    usage: Usage


StreamEvent = TextDelta | Finished


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason
    usage: Usage


@dataclass(frozen=True)
class BackendHealth:
    """Whether a backend can serve now, and if not, why (for /healthz, /readyz and the node's exit)."""

    ready: bool
    reason: str | None = None
    """Why it is not ready, or what is wrong while it still serves (a worker restarting beside others)."""
    failed: bool = False
    """It gave up (e.g. the model runtime kept crashing on restart): the node should stop, naming `reason`."""
    restarts: int = 0
    """Model runtime restarts since the backend started."""


class Backend(Protocol):
    """Produces chat completions with exact token usage.

    `deadline` is a `time.monotonic()` instant after which the backend gives up with RequestTimeout.
    Errors are raised as `bme.node.errors.NodeError` subclasses.
    """

    @property
    def kind(self) -> str:
        """ "embedded" or "upstream"."""
        ...

    @property
    def model_id(self) -> str:
        """The model id clients ask for."""
        ...

    async def prepare(self, params: ChatParams, *, default_max_tokens: int) -> PreparedChat:
        """Checks the prompt against the backend's limits and fixes the completion budget."""
        ...

    async def complete(self, prepared: PreparedChat, *, deadline: float) -> Completion: ...

    def stream(self, prepared: PreparedChat, *, deadline: float) -> AsyncGenerator[StreamEvent, None]:
        """Text deltas, then exactly one `Finished`."""
        ...

    def health(self) -> BackendHealth:
        """Cheap and non-blocking: the health endpoints call it on the event loop."""
        ...

    async def aclose(self) -> None: ...


async def collect(events: AsyncGenerator[StreamEvent, None]) -> Completion:
    """A whole completion from a stream of events."""
    parts: list[str] = []
    async with aclosing(events):  # stops the producer if we are cancelled
        async for event in events:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                return Completion(text="".join(parts), finish_reason=event.finish_reason, usage=event.usage)
    raise RuntimeError("a completion stream ended without its Finished event")


def build_backend(settings: NodeSettings) -> Backend:
    """The backend the settings ask for; the embedded one starts its model workers here and returns once
    each has loaded the model and generated a token (a second or so), or raises `ModelRuntimeFailed`."""
    if settings.backend == "upstream":
        from bme.node.upstream import UpstreamBackend

        return UpstreamBackend.from_settings(settings)
    from bme.node.embedded import EmbeddedBackend

    return EmbeddedBackend.from_settings(settings)
