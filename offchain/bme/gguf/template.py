"""A GGUF model's own chat template: messages rendered and tokenized exactly as llama-cpp-python's chat
handler (`create_chat_completion`) does, so that whoever counts a prompt's tokens (the node's model worker,
a user's quote) counts what the model is given.

It imports llama_cpp: import it only where the embedded model's runtime is installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from bme.errors import BmeError


class TemplateError(BmeError):
    """The model file has no chat template, or its template rejects the messages."""


@dataclass(frozen=True)
class RenderedPrompt:
    token_ids: list[int]
    stop: tuple[str, ...]
    """The template's stop strings."""


class ChatTemplate:
    """The model's chat template (the GGUF's `tokenizer.chat_template`), rendered and tokenized."""

    def __init__(self, llama: Llama) -> None:
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise TemplateError("the model file has no chat template (tokenizer.chat_template)")
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=_token_text(llama, eos_id),
            bos_token=_token_text(llama, bos_id),
            stop_token_ids=[eos_id],
        )
        self._llama = llama

    def render(self, messages: Iterable[tuple[str, str]]) -> RenderedPrompt:
        """The prompt of `messages`, given as (role, content) pairs."""
        chat: list[Any] = [{"role": role, "content": content} for role, content in messages]
        try:
            result = self._formatter(messages=chat)
        except Exception as exc:  # the template may raise_exception() on, e.g., a bad role order
            raise TemplateError(f"The messages do not fit the model's chat template: {exc}") from exc
        token_ids = self._llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = [result.stop] if isinstance(result.stop, str) else list(result.stop or [])
        return RenderedPrompt(token_ids=token_ids, stop=tuple(stop))


def _token_text(llama: Llama, token_id: int) -> str:
    if token_id < 0:
        return ""
    return llama.detokenize([token_id], special=True).decode("utf-8", errors="ignore")
