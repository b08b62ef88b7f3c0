"""The node's response bodies, key by key, without a model: the stream chunks and the whole completion as the
schema models write them, every error class's body, and the routes that need no completion, through the app
over an upstream backend whose server is down (so a chat call gets the 502 error body)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from bme.credential import sign_request
from bme.node import errors
from bme.node.app import CHAT_PATH, create_app
from bme.node.backends import Completion, Usage
from bme.node.schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChunkDelta,
    ChunkWriter,
    ErrorBody,
    ModelCard,
    ModelList,
    NodeHealth,
    NodeReadiness,
    completion_body,
)
from bme.node.server import free_port
from bme.node.upstream import UpstreamBackend

from .conftest import MODEL, chat_body

pytestmark = pytest.mark.pure

ERROR_KEYS = ["message", "type", "param", "code"]


def event(data: bytes) -> dict[str, Any]:
    assert data.startswith(b"data: ") and data.endswith(b"\n\n")
    decoded: dict[str, Any] = json.loads(data[len(b"data: ") : -2])
    ChatCompletionChunk.model_validate(decoded)
    return decoded


def test_stream_chunks_carry_only_what_they_add() -> None:
    writer = ChunkWriter("chatcmpl-1", MODEL, include_usage=False)
    first = event(writer.delta(ChunkDelta(role="assistant", content="")))
    head = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": first["created"],
        "model": MODEL,
    }

    def choice(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    assert first == choice({"role": "assistant", "content": ""})
    assert event(writer.delta(ChunkDelta(content="Blue é"))) == choice({"content": "Blue é"})
    assert event(writer.delta(ChunkDelta(), finish_reason="length")) == choice({}, "length")
    assert writer.usage(Usage(prompt_tokens=3, completion_tokens=2)) is None

    counting = ChunkWriter("chatcmpl-2", MODEL, include_usage=True)
    text = event(counting.delta(ChunkDelta(content="x")))
    assert list(text) == ["id", "object", "created", "model", "choices", "usage"] and text["usage"] is None
    last = counting.usage(Usage(prompt_tokens=3, completion_tokens=2))
    assert last is not None
    assert event(last)["choices"] == []
    assert event(last)["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_a_whole_completion_is_openais_chat_completion() -> None:
    body = completion_body("chatcmpl-3", MODEL, Completion("Red.", "stop", Usage(7, 2)))
    assert body == {
        "id": "chatcmpl-3",
        "object": "chat.completion",
        "created": body["created"],
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Red."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    assert isinstance(body["created"], int)
    ChatCompletion.model_validate(body)


def test_every_error_class_answers_the_declared_error_body() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.NodeError)]
    assert len(classes) > 10
    for cls in classes:
        if cls in (errors.ServerBusy, errors.ModelUnavailable):
            error = cls("busy", retry_after_s=2)
        elif cls is errors.UpstreamRejected:
            error = cls("refused", status_code=422)
        else:
            error = cls("wrong", param="model")
        body = error.body()
        assert list(body) == ["error"] and list(body["error"]) == ERROR_KEYS, cls
        ErrorBody.model_validate(body)


@pytest.fixture
def http(make_settings: Any) -> Iterator[TestClient]:
    """The node's app over an upstream backend whose server is not listening."""
    settings = make_settings(
        backend="upstream", upstream_url=f"http://127.0.0.1:{free_port()}/v1", upstream_model=MODEL
    )
    app = create_app(settings, UpstreamBackend.from_settings(settings), owns_backend=True)
    with TestClient(app) as client:
        yield client


def test_health_readiness_and_models(http: TestClient, make_settings: Any) -> None:
    settings = make_settings()
    health = http.get("/healthz")
    assert (health.status_code, health.json()) == (
        200,
        {
            "status": "ok",
            "backend": "upstream",
            "model": MODEL,
            "running": 0,
            "queued": 0,
            "slots": settings.max_concurrency,
            "max_queue": settings.max_queue,
            "jobs_executed": 0,
            "jobs_replayed": 0,
        },
    )
    NodeHealth.model_validate(health.json())
    ready = http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    NodeReadiness.model_validate(ready.json())
    card = {"id": MODEL, "object": "model", "created": 0, "owned_by": "bme-node"}
    assert http.get("/v1/models").json() == {"object": "list", "data": [card]}
    ModelList.model_validate(http.get("/v1/models").json())
    assert http.get(f"/v1/models/{MODEL}").json() == card
    ModelCard.model_validate(card)


def test_errors_of_the_routes_are_the_error_body(
    http: TestClient, relayer: LocalAccount, operator: LocalAccount
) -> None:
    raw = json.dumps(chat_body(max_tokens=2)).encode()
    headers = sign_request(relayer, "POST", CHAT_PATH, raw, operator=operator.address)
    refused = {
        "unknown model": (http.get("/v1/models/gpt-4o"), 404, "model_not_found"),
        "no route": (http.get("/v2/nothing"), 404, "not_found"),
        "no credential": (http.post(CHAT_PATH, content=raw), 401, "invalid_api_key"),
        "upstream down": (http.post(CHAT_PATH, content=raw, headers=headers), 502, "upstream_error"),
    }
    for what, (response, status, code) in refused.items():
        assert response.status_code == status, (what, response.text)
        body = response.json()
        assert list(body) == ["error"] and list(body["error"]) == ERROR_KEYS, what
        assert ErrorBody.model_validate(body).error.code == code, what
