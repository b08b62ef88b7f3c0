"""The embedded model itself: one llama-cpp-python instance, its chat template and its generation loop.

This is the only node module that imports llama_cpp. It runs inside a model worker process
(`bme.node.worker`), never in the HTTP server's process, so that a crash of the native runtime (an illegal
instruction, a segfault) takes down a worker the node restarts, not the node.

The prompt is the model's own chat template (from the GGUF metadata, `bme.gguf.template`) rendered and
tokenized exactly as llama-cpp-python's `create_chat_completion` does, and the generation loop counts the
tokens it samples, so usage is exact in both plain and streaming responses: prompt tokens are the tokenized
prompt, and completion tokens are the tokens sampled, not counting the end-of-generation token
(llama-cpp-python's own convention, so the node's figures equal a direct call's).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from llama_cpp import Llama

from bme.gguf.template import ChatTemplate, TemplateError
from bme.node.backends import ChatMessage, ChatParams, FinishReason, Usage
from bme.node.errors import InvalidRequest, NodeError, RequestTimeout
from bme.node.stops import first_stop, longest_stop, stop_holdback

CHAT_FORMAT = "chat_template.default"
"""llama-cpp-python's name for the GGUF's own chat template; loading with it makes a direct
`create_chat_completion` use the same prompt as the node."""

# llama-cpp-python's create_chat_completion defaults for the samplers OpenAI's API has no field for.
TOP_K = 40
MIN_P = 0.05

WARMUP = ChatParams(messages=(ChatMessage("user", "Hi"),), max_tokens=1, temperature=0.0)
"""The completion a worker runs before it reports ready: one token exercises every kernel a request uses."""


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
class Prompt:
    token_ids: list[int]
    stop: tuple[str, ...]
    """The request's stop strings, then the template's."""


def _eog_tokens(llama: Llama) -> frozenset[int]:
    """Every end-of-generation token of the vocabulary (EOS, end-of-turn, ...)."""
    vocab = llama._model.vocab  # llama-cpp-python exposes no public handle for llama_vocab_is_eog
    return frozenset(t for t in range(llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))


class Engine:
    """One model instance: renders prompts and runs completions, one at a time."""

    def __init__(self, llama: Llama, *, default_seed: int) -> None:
        self.llama = llama
        try:
            self.template = ChatTemplate(llama)
        except TemplateError as exc:
            raise NodeError(str(exc)) from None
        self.n_ctx = llama.n_ctx()
        self._eog = _eog_tokens(llama)
        self._default_seed = default_seed

    def render(self, params: ChatParams) -> Prompt:
        """The request's prompt in the model's chat template; a template that rejects it is a bad request."""
        try:
            rendered = self.template.render((m.role, m.content) for m in params.messages)
        except TemplateError as exc:
            raise InvalidRequest(str(exc), param="messages") from exc
        return Prompt(token_ids=rendered.token_ids, stop=(*params.stop, *rendered.stop))

    def warm_up(self) -> None:
        """Renders a tiny prompt and generates one token, so a runtime that cannot run fails now."""
        prompt = self.render(WARMUP)
        self.generate(prompt.token_ids, WARMUP, max_tokens=1, emit=None, cancelled=lambda: False)

    def generate(
        self,
        prompt_ids: list[int],
        params: ChatParams,
        *,
        max_tokens: int,
        emit: Callable[[str], None] | None,
        cancelled: Callable[[], bool],
        deadline: float | None = None,
    ) -> tuple[FinishReason, Usage, str] | None:
        """Runs one completion; returns its finish reason, usage and the text not yet emitted.

        With `emit`, text is passed on as it is made (holding back what could start a stop string);
        without, all of it is returned at the end. Returns None if `cancelled()` became true.
        `params.stop` must hold every stop string (the request's and the chat template's).
        """
        llama = self.llama
        stops = params.stop
        decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        completion = 0  # tokens sampled, not counting the end-of-generation token
        text = ""  # the whole completion so far
        sent = 0  # characters of `text` already emitted
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
                completion += 1
                # Pieces concatenate: llama.cpp's detokenizer needs no context (llama-cpp-python ignores
                # prev_tokens); the incremental decoder holds back a character split across tokens.
                text += decoder.decode(llama.detokenize([token]))
                cut = first_stop(text, stops, search_from=max(0, sent - longest_stop(stops)))
                if cut is not None:
                    text = text[:cut]
                    finish = "stop"
                    break
                if completion >= max_tokens:
                    break
                if emit is not None:
                    ready = len(text) - stop_holdback(text, stops)
                    if ready > sent:
                        emit(text[sent:ready])
                        sent = ready
                if cancelled():
                    return None
                if deadline is not None and time.monotonic() > deadline:
                    raise RequestTimeout(f"The completion did not finish in time ({completion} tokens made).")
        finally:
            tokens.close()
        if finish == "length":
            text += decoder.decode(b"", final=True)  # drops a character cut off by the budget
        return finish, Usage(prompt_tokens=len(prompt_ids), completion_tokens=completion), text[sent:]
