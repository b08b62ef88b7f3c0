"""An operator's answer is checked where it enters the relayer: a malformed or impossible answer fails that
call (the job is tried again), and never reaches the store or a settlement batch, where one bad count would
revert or stop every later batch."""

from __future__ import annotations

from typing import Any

import pytest

from bme.relayer.dispatch import ANSWERED_ERROR, MAX_TOKENS_REPORTED, OperatorError, parse_answer

pytestmark = pytest.mark.pure


def completion(content: Any = "Hi.", prompt_tokens: Any = 31, completion_tokens: Any = 2) -> dict[str, Any]:
    return {
        "choices": [{"message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def test_an_honest_answer_passes_unchanged() -> None:
    answer = parse_answer(completion())
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("Hi.", 31, 2)
    assert parse_answer(completion(None, 0, MAX_TOKENS_REPORTED)).text == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("completion_tokens", 2**32 + 5),  # past the escrow's uint32: would revert the whole batch
        ("completion_tokens", -1),
        ("prompt_tokens", 10**30),
        ("prompt_tokens", 3.5),
        ("completion_tokens", "16"),
        ("completion_tokens", True),
        ("prompt_tokens", None),
    ],
)
def test_an_impossible_token_count_fails_the_call_not_the_service(field: str, value: Any) -> None:
    with pytest.raises(OperatorError) as failed:
        parse_answer(completion(**{field: value}))
    assert failed.value.kind == ANSWERED_ERROR and not failed.value.fatal
    assert f"usage.{field}" in failed.value.detail


@pytest.mark.parametrize(
    "payload",
    [{}, {"choices": []}, {"choices": [{"message": {}}], "usage": {}}, [], "text", completion(content=["a"])],
)
def test_what_is_not_a_completion_fails_the_call(payload: Any) -> None:
    with pytest.raises(OperatorError) as failed:
        parse_answer(payload)
    assert "not a completion" in failed.value.detail
