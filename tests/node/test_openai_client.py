"""The official `openai` client against a real node, unchanged but for its base URL (and a relayer token)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import openai
import pytest
from openai import OpenAI

from bme.credential import issue_token

from .conftest import MODEL, PROMPT, Node

if TYPE_CHECKING:
    from llama_cpp import Llama


@pytest.fixture
def client(node: Node) -> OpenAI:
    token = issue_token(node.relayer, operator=node.operator.address, ttl_s=300)
    return OpenAI(base_url=f"{node.url}/v1", api_key=token, max_retries=0, timeout=120)


def test_openai_client_chat_completion(client: OpenAI, reference_llama: Llama) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=10, temperature=0, seed=0
    )
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.choices[0].finish_reason == "length"
    text = completion.choices[0].message.content
    assert text
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 10
    assert len(reference_llama.tokenize(text.encode(), add_bos=False, special=False)) == 10
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 10


def test_openai_client_streaming_matches_plain_completion(client: OpenAI) -> None:
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=10, temperature=0)
    plain = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    stream = client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    pieces: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == plain.choices[0].message.content
    assert usage is not None and usage.model_dump() == plain.usage.model_dump()


def test_openai_client_lists_models(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


def test_openai_client_sees_typed_errors(node: Node, client: OpenAI) -> None:
    stranger = OpenAI(base_url=f"{node.url}/v1", api_key="sk-not-the-relayer", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError, match="gpt-4o"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=100_000
        )
