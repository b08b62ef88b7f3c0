"""The relayer's token counts with the embedded model's own tokenizer (its GGUF file, vocabulary only): the
prompt as the node and the payer's quote count it, and the bound used for models without a tokenizer never
below what this real tokenizer counts, whatever the text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bme.gguf.files import EMBEDDED_MODEL_NAME, find_smollm2_gguf
from bme.gguf.tokenizer import GgufTokenizer
from bme.relayer.usage import ByteBound, UsageCounting
from bme.user.prompt_tokens import count_prompt_tokens


@pytest.fixture(scope="module")
def tokenizer() -> Iterator[GgufTokenizer]:
    loaded = GgufTokenizer(find_smollm2_gguf())
    yield loaded
    loaded.close()


def request(content: str, system: str | None = None) -> str:
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": content}
    ]
    return json.dumps(
        {"model": EMBEDDED_MODEL_NAME, "messages": messages, "max_tokens": 64, "nonce": "n" * 8}
    )


def test_the_embedded_model_is_counted_exactly_as_the_payers_quote_counts_it() -> None:
    counting = UsageCounting()
    counting.load()
    try:
        for prompt, system in (("Name three colours.", None), ("Résumé in 日本語, please!", "Be terse.")):
            counted, max_tokens = counting.count(request(prompt, system), "Red, green, blue.")
            assert counted.exact and max_tokens == 64
            assert counted.input_tokens == count_prompt_tokens(prompt, EMBEDDED_MODEL_NAME, system).count
            assert counted.output_tokens == 6  # "Red", ",", " green", ",", " blue", "."
    finally:
        counting.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(system=st.one_of(st.none(), st.text(max_size=300)), user=st.text(max_size=300))
def test_the_byte_bound_is_never_below_the_real_tokenizers_count(
    tokenizer: GgufTokenizer, system: str | None, user: str
) -> None:
    messages = ([("system", system)] if system is not None else []) + [("user", user)]
    bound = ByteBound()
    assert tokenizer.prompt_tokens(messages) <= bound.prompt_tokens(messages)
    assert tokenizer.text_tokens(user) <= bound.text_tokens(user)
