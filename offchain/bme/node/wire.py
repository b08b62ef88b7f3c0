"""The messages between the node and its model worker processes (see `bme.node.supervisor`).

They are pickled over a local socket pair that only the node and the worker it started hold, so pickle is
safe here. Every message that answers a request carries that request's `id`. Errors cross as
`Failure(kind, message, param)` and are rebuilt into the node's own error classes on the server side, so
a 400 raised by the chat template in the worker is still a 400 to the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bme.node.backends import ChatParams, FinishReason, Usage
from bme.node.errors import InvalidRequest, NodeError, PromptTooLarge, RequestTimeout

# --- node -> worker -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The first message: which model to load and how (one model instance per worker)."""

    model_path: str
    n_ctx: int
    n_threads: int
    n_batch: int
    seed: int


@dataclass(frozen=True, slots=True)
class Prepare:
    """Render the messages in the model's chat template and tokenize them; answered by `Prepared`."""

    id: int
    params: ChatParams


@dataclass(frozen=True, slots=True)
class Generate:
    """Run one completion; answered by `Delta`s (when `incremental`), then `Done` or `Failure`.

    `params.stop` already holds the template's stops, `max_tokens` is fixed, and `timeout_s` is what is
    left of the request's deadline when it is sent (each process keeps its own monotonic clock).
    """

    id: int
    prompt_ids: tuple[int, ...]
    params: ChatParams
    max_tokens: int
    timeout_s: float
    incremental: bool


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop generation `id` at the next token (its client left); answered by `Failure(kind="cancelled")`."""

    id: int


# --- worker -> node -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Sent once the runtime is imported, before the model loads: who the worker is and what it runs."""

    pid: int
    runtime: dict[str, Any]
    """`bme.node.runtime.RuntimeReport.as_dict()` of the worker's llama-cpp-python."""


@dataclass(frozen=True, slots=True)
class Stage:
    """What the worker starts now ("loading the model", "warming up"): a crash is reported as during it."""

    name: str


@dataclass(frozen=True, slots=True)
class Ready:
    """The model is loaded and has generated a token: the worker can serve."""

    n_ctx: int
    load_s: float
    warmup_s: float


@dataclass(frozen=True, slots=True)
class StartFailed:
    """Loading or warming up raised an error (a Python one: a crash sends nothing); the worker then exits."""

    stage: str
    message: str


@dataclass(frozen=True, slots=True)
class Prepared:
    id: int
    token_ids: tuple[int, ...]
    stop: tuple[str, ...]
    """The request's stops followed by the chat template's."""


@dataclass(frozen=True, slots=True)
class Delta:
    id: int
    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a completion; `text` is what remains of it (all of it, when not incremental)."""

    id: int
    finish_reason: FinishReason
    usage: Usage
    text: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """Request `id` failed in the worker; `kind` names the node error class to raise (see `error`)."""

    id: int
    kind: str
    message: str
    param: str | None = None

    @classmethod
    def of(cls, request_id: int, exc: NodeError) -> Failure:
        kind = type(exc).__name__ if type(exc) in _ERRORS.values() else NodeError.__name__
        return cls(request_id, kind, exc.message, exc.param)

    def error(self) -> NodeError:
        """The node error this failure stands for (a plain 500 `NodeError` for anything unknown)."""
        return _ERRORS.get(self.kind, NodeError)(self.message, param=self.param)


CANCELLED = "cancelled"
"""The `Failure.kind` that ends a cancelled generation: nobody is waiting for it any more."""

_ERRORS: dict[str, type[NodeError]] = {
    cls.__name__: cls for cls in (NodeError, InvalidRequest, PromptTooLarge, RequestTimeout)
}

ToWorker = Prepare | Generate | Cancel
FromWorker = Hello | Stage | Ready | StartFailed | Prepared | Delta | Done | Failure
