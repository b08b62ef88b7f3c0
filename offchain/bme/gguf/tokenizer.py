"""A GGUF model's tokenizer without its weights: counts a request's prompt tokens and an answer's tokens as
the node running that model counts them.

The prompt is rendered in the model's own chat template and tokenized exactly as the node's model worker
does (`bme.gguf.template`); the answer is tokenized as plain text (no beginning-of-text token, special
tokens' names read as ordinary text). Only the vocabulary is read (`vocab_only`): loading takes a fraction
of a second and a few megabytes; counting a job takes tens of microseconds (the README's relayer figures).

It imports llama_cpp when a tokenizer is loaded: load one only where the model runtime is installed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bme.gguf.files import check_gguf


class GgufTokenizer:
    """The tokenizer and chat template of the GGUF file at `path`. Thread-safe: one lock around each count
    (llama.cpp's tokenizer keeps per-call scratch state)."""

    exact = True

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama

        from bme.gguf.template import ChatTemplate

        self.path = check_gguf(path)
        self._llama: Any = Llama(model_path=str(self.path), vocab_only=True, verbose=False)
        self._template = ChatTemplate(self._llama)
        self._lock = threading.Lock()

    def prompt_tokens(self, messages: Iterable[tuple[str, str]]) -> int:
        """The tokens of `messages` ((role, content) pairs) rendered in the model's chat template: what the
        node reports as `prompt_tokens`. Raises `bme.gguf.template.TemplateError` if the template rejects
        them."""
        listed = list(messages)
        with self._lock:
            return len(self._template.render(listed).token_ids)

    def text_tokens(self, text: str) -> int:
        """The tokens of `text` on its own (an answer): what the node reports as `completion_tokens` for the
        answer, up to a token or two where the sampled tokens are not the text's own tokenization."""
        if not text:
            return 0
        with self._lock:
            return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def close(self) -> None:
        with self._lock:
            self._llama.close()
