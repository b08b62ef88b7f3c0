"""The tokens a job is settled for: the relayer's own count against the operator's report.

An operator's node reports its usage (`prompt_tokens`, `completion_tokens`), and the payer is charged per
token, so the relayer never settles a report as is. It counts the job itself, from the revealed request and
the answer it received:

- **with the model's tokenizer** (`exact`): the prompt rendered in the model's chat template and tokenized,
  and the answer tokenized, from the model's GGUF file (`bme.gguf.tokenizer`). The embedded model's file is
  found without configuration; `BME_RELAYER_TOKENIZERS` names the GGUF files of other models.
- **as an upper bound** for a model the relayer has no tokenizer for (an operator proxying an
  OpenAI-compatible server): a token is at least one byte of text with the tokenizers current models use
  (byte-level BPE, or SentencePiece with byte fallback), so the prompt has at most its messages' UTF-8 bytes
  plus an allowance for the chat template's own tokens (`TEMPLATE_TOKENS` and `MESSAGE_TOKENS` a message),
  and the answer at most its UTF-8 bytes plus `ANSWER_SLACK_TOKENS` (tokens that left no text: a character
  cut in half at the token budget, a special token). Generous to the operator, but never unbounded.

Each field is settled at the least of the report, the count and the request's cap (`max_tokens`, for the
answer). A report above the count by more than the tolerance (`TOLERANCE_TOKENS` plus `TOLERANCE_PERCENT`
of the count: a re-tokenized answer may differ by a token or two from the tokens sampled) is a *usage
dispute*, recorded against the operator (the job's history, the operator's record, a Prometheus counter) and
counted like a failure when choosing operators.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: The tolerance of a report over the relayer's count: this many tokens, plus TOLERANCE_PERCENT of the count.
TOLERANCE_TOKENS = 2
TOLERANCE_PERCENT = 2
#: The upper bound's allowance for a chat template's tokens: per prompt, and per message.
TEMPLATE_TOKENS = 64
MESSAGE_TOKENS = 8
#: The upper bound's allowance for answer tokens that leave no text.
ANSWER_SLACK_TOKENS = 4


class TokenCounter(Protocol):
    """Counts a model's tokens: exactly (its tokenizer) or as an upper bound."""

    exact: bool

    def prompt_tokens(self, messages: Iterable[tuple[str, str]]) -> int: ...

    def text_tokens(self, text: str) -> int: ...


class ByteBound:
    """An upper bound on any byte-level tokenizer's count: UTF-8 bytes plus the chat template's allowance."""

    exact = False

    def prompt_tokens(self, messages: Iterable[tuple[str, str]]) -> int:
        total = TEMPLATE_TOKENS
        for role, content in messages:
            total += MESSAGE_TOKENS + len(role.encode("utf-8")) + len(content.encode("utf-8"))
        return total

    def text_tokens(self, text: str) -> int:
        return len(text.encode("utf-8")) + ANSWER_SLACK_TOKENS


def tolerance(counted: int) -> int:
    """How far a report may exceed a count of `counted` tokens before it is disputed."""
    return TOLERANCE_TOKENS + -(-counted * TOLERANCE_PERCENT // 100)


@dataclass(frozen=True)
class Counted:
    """The relayer's count of a job's tokens, and whether it is exact or an upper bound."""

    input_tokens: int
    output_tokens: int
    exact: bool


@dataclass(frozen=True)
class SettledUsage:
    """What a job is settled for, with what it was settled from."""

    input_tokens: int
    output_tokens: int
    reported: tuple[int, int]
    counted: Counted
    #: The fields the operator reported beyond the count and its tolerance ("input", "output").
    disputed: tuple[str, ...]

    @property
    def excess(self) -> int:
        """Tokens reported and not settled."""
        return self.reported[0] + self.reported[1] - self.input_tokens - self.output_tokens

    def detail(self) -> str:
        """The job's history line for its answer."""
        settled = f"{self.input_tokens}+{self.output_tokens} tokens"
        counted = f"{self.counted.input_tokens}+{self.counted.output_tokens}"
        if self.reported == (self.input_tokens, self.output_tokens) and not self.disputed:
            return settled
        how = "counted" if self.counted.exact else "bounded at"
        line = (
            f"{settled} settled: the operator reported {self.reported[0]}+{self.reported[1]}, "
            f"the relayer {how} {counted}"
        )
        if self.disputed:
            line = f"usage disputed ({', '.join(self.disputed)} over-reported): {line}"
        return line


def settle_usage(
    reported: tuple[int, int], counted: Counted, max_output_tokens: int, max_input_tokens: int | None = None
) -> SettledUsage:
    """Each field at min(reported, counted, cap); a report above the count by more than `tolerance` is
    disputed. The caps are the request's (`max_tokens` for the answer; the prompt has none of its own)."""
    counts = (counted.input_tokens, counted.output_tokens)
    caps = (max_input_tokens, max_output_tokens)
    settled: list[int] = []
    disputed: list[str] = []
    for name, report, count, cap in zip(("input", "output"), reported, counts, caps, strict=True):
        bound = count if cap is None else min(count, cap)
        if report > bound + tolerance(bound):
            disputed.append(name)
        settled.append(max(0, min(report, bound)))
    return SettledUsage(settled[0], settled[1], reported, counted, tuple(disputed))


class UsageCounting:
    """The relayer's counters by model name: a GGUF tokenizer where it has the model's file, else `ByteBound`.

    `load()` reads the tokenizers (blocking: call it once, off the event loop); a file that cannot be read is
    logged and its model counted by the bound.
    """

    def __init__(self, tokenizer_files: Mapping[str, Path] | None = None, *, embedded: bool = True) -> None:
        self._files = dict(tokenizer_files or {})
        self._embedded = embedded
        self._counters: dict[str, TokenCounter] = {}
        self._bound = ByteBound()

    def load(self) -> None:
        files = dict(self._files)
        if self._embedded:
            from bme.gguf.files import EMBEDDED_MODEL_NAME, ModelFileNotFound, find_smollm2_gguf

            if EMBEDDED_MODEL_NAME not in files:
                try:
                    files[EMBEDDED_MODEL_NAME] = find_smollm2_gguf()
                except ModelFileNotFound as exc:
                    log.warning("the embedded model's tokens are bounded, not counted: %s", exc)
        for name, path in files.items():
            started = time.perf_counter()
            try:
                from bme.gguf.tokenizer import GgufTokenizer

                self._counters[name] = GgufTokenizer(path)
            except Exception as exc:  # no runtime, not a GGUF file, no chat template: bound it instead
                log.warning("the tokens of %s are bounded, not counted: cannot load %s: %s", name, path, exc)
                continue
            log.info(
                "counting the tokens of %s with %s (%.0f ms)",
                name,
                path,
                1e3 * (time.perf_counter() - started),
            )

    @property
    def exact_counters(self) -> int:
        """How many models' tokens are counted with their tokenizer."""
        return len(self._counters)

    def counter(self, model: str) -> TokenCounter:
        return self._counters.get(model, self._bound)

    def count(self, request_text: str, answer: str) -> tuple[Counted, int]:
        """The relayer's count of a job's tokens (from its revealed request and its answer), and the request's
        `max_tokens`. A template that rejects the messages (the node would have refused them) falls back to
        the bound."""
        request: Any = json.loads(request_text)
        messages = [(str(m["role"]), str(m["content"])) for m in request["messages"]]
        max_tokens = int(request["max_tokens"])
        counter = self.counter(str(request["model"]))
        try:
            return Counted(
                counter.prompt_tokens(messages), counter.text_tokens(answer), counter.exact
            ), max_tokens
        except Exception as exc:
            log.warning("counting with the model's tokenizer failed (%s): bounding instead", exc)
            bound = self._bound
            return Counted(bound.prompt_tokens(messages), bound.text_tokens(answer), False), max_tokens

    def close(self) -> None:
        for counter in self._counters.values():
            close = getattr(counter, "close", None)
            if close is not None:
                close()
        self._counters.clear()
