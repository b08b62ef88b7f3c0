"""The embedded backend: a GGUF model run in this process on the CPU by llama-cpp-python.

The prompt is the model's own chat template (from the GGUF metadata) rendered and tokenized exactly as
llama-cpp-python's `create_chat_completion` does, and the generation loop counts the tokens it samples,
so usage is exact in both plain and streaming responses: prompt tokens are the tokenized prompt, and
completion tokens are the tokens sampled, not counting the end-of-generation token (llama-cpp-python's
own convention, so the node's figures equal a direct call's).

Each model instance serves one completion at a time on a worker thread; `max_concurrency` instances are
loaded (the weights are memory-mapped, so instances share them) and the cores are shared out among them.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from bme.node.backends import (
    ChatParams,
    Completion,
    Finished,
    FinishReason,
    PreparedChat,
    StreamEvent,
    TextDelta,
    Usage,
    collect,
)
from bme.node.errors import InvalidRequest, NodeError, PromptTooLarge, RequestTimeout
from bme.node.model_files import resolve_model_path
from bme.node.settings import NodeSettings

log = logging.getLogger(__name__)

CHAT_FORMAT = "chat_template.default"
"""llama-cpp-python's name for the GGUF's own chat template; loading with it makes a direct
`create_chat_completion` use the same prompt as the node."""

# llama-cpp-python's create_chat_completion defaults for the samplers OpenAI's API has no field for.
TOP_K = 40
MIN_P = 0.05
_INSTANCE_POLL_S = 0.05


def load_llama(model_path: Path, *, n_ctx: int, n_threads: int, n_batch: int, seed: int) -> Llama:
    """One llama-cpp-python model instance, quiet, using the GGUF's chat template."""
    return Llama(
        model_path=str(model_path),
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,
        n_batch=n_batch,
        seed=seed,
        chat_format=CHAT_FORMAT,
        verbose=False,
    )


@dataclass(frozen=True)
class _Prompt:
    token_ids: list[int]
    stop: tuple[str, ...]


class ChatTemplate:
    """The model's chat template, rendered and tokenized as llama-cpp-python's chat handler does."""

    def __init__(self, llama: Llama) -> None:
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise NodeError("the model file has no chat template (tokenizer.chat_template)")
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        self._eos_token = _token_text(llama, eos_id)
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._eos_token,
            bos_token=_token_text(llama, bos_id),
            stop_token_ids=[eos_id],
        )
        self._llama = llama

    def render(self, params: ChatParams) -> _Prompt:
        messages: list[Any] = [{"role": m.role, "content": m.content} for m in params.messages]
        try:
            result = self._formatter(messages=messages)
        except Exception as exc:  # the template may raise_exception() on, e.g., a bad role order
            raise InvalidRequest(
                f"The messages do not fit the model's chat template: {exc}", param="messages"
            ) from exc
        token_ids = self._llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        template_stops = [result.stop] if isinstance(result.stop, str) else list(result.stop or [])
        return _Prompt(token_ids=token_ids, stop=(*params.stop, *template_stops))


def _token_text(llama: Llama, token_id: int) -> str:
    if token_id < 0:
        return ""
    return llama.detokenize([token_id], special=True).decode("utf-8", errors="ignore")


def _eog_tokens(llama: Llama) -> frozenset[int]:
    """Every end-of-generation token of the vocabulary (EOS, end-of-turn, ...)."""
    vocab = llama._model.vocab  # llama-cpp-python exposes no public handle for llama_vocab_is_eog
    return frozenset(t for t in range(llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))


def stop_holdback(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of `text` could start a stop string, so must not be sent yet."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


Sink = Callable[[StreamEvent | NodeError], None]


class EmbeddedBackend:
    """Completions from llama-cpp-python model instances in this process."""

    def __init__(
        self,
        instances: Sequence[Llama],
        *,
        model_id: str,
        default_seed: int = 0,
    ) -> None:
        if not instances:
            raise ValueError("at least one model instance is needed")
        self._model_id = model_id
        self._default_seed = default_seed
        self._template = ChatTemplate(instances[0])
        self._eog = _eog_tokens(instances[0])
        self._n_ctx = instances[0].n_ctx()
        self._pool: queue.Queue[Llama] = queue.Queue()
        for instance in instances:
            self._pool.put(instance)
        self._instances = list(instances)
        # Workers beyond the instances only wait for one; they let several servers share one backend.
        self._executor = ThreadPoolExecutor(max_workers=len(instances) + 8, thread_name_prefix="bme-llama")

    @classmethod
    def from_settings(cls, settings: NodeSettings) -> EmbeddedBackend:
        path = resolve_model_path(settings.model_path)
        started = time.perf_counter()
        instances = [
            load_llama(
                path,
                n_ctx=settings.n_ctx,
                n_threads=settings.threads_per_instance,
                n_batch=settings.n_batch,
                seed=settings.seed,
            )
            for _ in range(settings.max_concurrency)
        ]
        log.info("loaded %s x%d in %.2fs", path.name, len(instances), time.perf_counter() - started)
        return cls(
            instances,
            model_id=settings.served_model,
            default_seed=settings.seed,
        )

    @property
    def kind(self) -> str:
        return "embedded"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def llama(self) -> Llama:
        """The first model instance (for tools that compare against llama-cpp-python directly)."""
        return self._instances[0]

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def count_prompt_tokens(self, params: ChatParams) -> int:
        """The exact prompt size of a request, chat template included."""
        return len(self._template.render(params).token_ids)

    async def prepare(self, params: ChatParams, *, default_max_tokens: int) -> PreparedChat:
        prompt = await asyncio.to_thread(self._template.render, params)
        n_prompt = len(prompt.token_ids)
        room = self._n_ctx - n_prompt
        if params.max_tokens is None:
            max_tokens = min(default_max_tokens, room)
        elif params.max_tokens > room:
            raise PromptTooLarge(
                f"The prompt ({n_prompt} tokens) plus max_tokens ({params.max_tokens}) exceeds the "
                f"model's context of {self._n_ctx} tokens.",
                param="max_tokens",
            )
        else:
            max_tokens = params.max_tokens
        if max_tokens < 1:
            raise PromptTooLarge(f"The prompt ({n_prompt} tokens) fills the context of {self._n_ctx}.")
        # The stops (the request's and the template's) travel in params so the worker needs nothing else.
        merged = ChatParams(
            messages=params.messages,
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=prompt.stop,
            seed=params.seed,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
        )
        return PreparedChat(
            params=merged,
            max_tokens=max_tokens,
            prompt_tokens=n_prompt,
            prompt_token_ids=tuple(prompt.token_ids),
        )

    async def complete(self, prepared: PreparedChat, *, deadline: float) -> Completion:
        # The text crosses from the worker thread once, at the end, not token by token.
        return await collect(self._events(prepared, deadline, incremental=False))

    def stream(self, prepared: PreparedChat, *, deadline: float) -> AsyncGenerator[StreamEvent, None]:
        return self._events(prepared, deadline, incremental=True)

    async def _events(
        self, prepared: PreparedChat, deadline: float, *, incremental: bool
    ) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[StreamEvent | NodeError] = asyncio.Queue()
        cancel = threading.Event()

        def sink(item: StreamEvent | NodeError) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                cancel.set()

        loop.run_in_executor(self._executor, self._run, prepared, sink, cancel, deadline, incremental)
        try:
            while True:
                item = await events.get()
                if isinstance(item, NodeError):
                    raise item
                yield item
                if isinstance(item, Finished):
                    return
        finally:
            cancel.set()

    def _run(
        self, prepared: PreparedChat, sink: Sink, cancel: threading.Event, deadline: float, incremental: bool
    ) -> None:
        """Worker thread: waits for a free instance, generates, reports events through `sink`."""
        try:
            llama = self._checkout(cancel, deadline)
            if llama is None:
                return
            try:
                self._generate(llama, prepared, sink, cancel, deadline, incremental)
            finally:
                self._pool.put(llama)
        except NodeError as exc:
            sink(exc)
        except Exception as exc:
            log.exception("embedded generation failed")
            sink(NodeError(f"The model failed: {exc}"))

    def _checkout(self, cancel: threading.Event, deadline: float) -> Llama | None:
        while not cancel.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout("Timed out waiting for a free model instance.")
            try:
                return self._pool.get(timeout=min(remaining, _INSTANCE_POLL_S))
            except queue.Empty:
                continue
        return None

    def _generate(
        self,
        llama: Llama,
        prepared: PreparedChat,
        sink: Sink,
        cancel: threading.Event,
        deadline: float,
        incremental: bool,
    ) -> None:
        params = prepared.params
        assert prepared.prompt_token_ids is not None, "embedded requests are prepared by this backend"
        prompt_ids = list(prepared.prompt_token_ids)
        stops = params.stop
        decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        completion_ids: list[int] = []
        text = ""  # the whole completion so far
        sent = 0  # characters of `text` already sent
        finish: FinishReason = "length"

        llama.set_seed(self._default_seed if params.seed is None else params.seed)
        tokens = llama.generate(
            prompt_ids,
            top_k=TOP_K,
            top_p=params.top_p,
            min_p=MIN_P,
            temp=params.temperature,
            repeat_penalty=1.0,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
        )
        try:
            for token in tokens:
                if token in self._eog:
                    finish = "stop"
                    break
                completion_ids.append(token)
                # Pieces concatenate: llama.cpp's detokenizer needs no context (llama-cpp-python ignores
                # prev_tokens); the incremental decoder holds back a character split across tokens.
                text += decoder.decode(llama.detokenize([token]))
                cut = _first_stop(text, stops, search_from=max(0, sent - _longest(stops)))
                if cut is not None:
                    text = text[:cut]
                    finish = "stop"
                    break
                if len(completion_ids) >= prepared.max_tokens:
                    break
                ready = len(text) - stop_holdback(text, stops) if incremental else 0
                if ready > sent:
                    sink(TextDelta(text[sent:ready]))
                    sent = ready
                if cancel.is_set():
                    return
                if time.monotonic() > deadline:
                    raise RequestTimeout(
                        f"The completion did not finish in time ({len(completion_ids)} tokens made)."
                    )
        finally:
            tokens.close()
        if finish == "length":
            text += decoder.decode(b"", final=True)  # drops a character cut off by the budget
        if len(text) > sent:
            sink(TextDelta(text[sent:]))
        sink(Finished(finish, Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(completion_ids))))

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _longest(stops: Sequence[str]) -> int:
    return max((len(s) for s in stops), default=0)


def _first_stop(text: str, stops: Sequence[str], *, search_from: int) -> int | None:
    """Where the earliest stop string starts in `text`, looking only from `search_from` on."""
    found = [i for i in (text.find(s, search_from) for s in stops if s) if i >= 0]
    return min(found) if found else None
