"""The upstream backend, forwarding to a real second node (an OpenAI-compatible server on loopback)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bme.credential import issue_token
from bme.node.app import CHAT_PATH
from bme.node.backends import ChatMessage, ChatParams
from bme.node.errors import ServerBusy, UpstreamError
from bme.node.server import free_port
from bme.node.upstream import UpstreamBackend

from .conftest import MODEL, Node, chat_body
from .test_app import assert_openai_error, sse_events

PUBLIC_NAME = "smollm2-via-upstream"


def upstream_settings(make_settings: Any, base_url: str, api_key: str, **overrides: Any) -> Any:
    return make_settings(
        backend="upstream",
        upstream_url=base_url,
        upstream_model=MODEL,
        upstream_api_key=api_key,
        model_name=PUBLIC_NAME,
        **overrides,
    )


@pytest.fixture
def front(node: Node, make_settings: Any, serve_node: Any) -> Iterator[Node]:
    """Node B, whose backend is node A (the embedded `node`), reached with a relayer token for A."""
    key = issue_token(node.relayer, operator=node.operator.address, ttl_s=600)
    settings = upstream_settings(make_settings, f"{node.url}/v1", key, max_tokens_limit=1000)
    backend = UpstreamBackend.from_settings(settings)
    with serve_node(backend=backend, settings=settings) as b:
        yield b


def test_upstream_forwards_and_reports_the_upstreams_usage(front: Node, node: Node) -> None:
    via_b = front.chat(chat_body(max_tokens=10) | {"model": PUBLIC_NAME})
    assert via_b.status_code == 200, via_b.text
    direct = node.chat(chat_body(max_tokens=10)).json()
    body = via_b.json()
    assert body["model"] == PUBLIC_NAME
    assert body["choices"][0]["message"] == direct["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == direct["usage"]
    assert body["usage"]["completion_tokens"] == 10
    with front.client() as http:
        assert http.get("/healthz").json()["backend"] == "upstream"
        assert [m["id"] for m in http.get("/v1/models").json()["data"]] == [PUBLIC_NAME]


def test_upstream_streaming_passes_text_and_usage_through(front: Node, node: Node) -> None:
    direct = node.chat(chat_body(max_tokens=10)).json()
    raw, headers = front.signed(
        chat_body(max_tokens=10, stream=True, stream_options={"include_usage": True}) | {"model": PUBLIC_NAME}
    )
    with front.client() as http, http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == direct["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == direct["usage"]
    assert all(c["model"] == PUBLIC_NAME for c in chunks)


def test_upstream_refusal_is_passed_on(front: Node) -> None:
    # Node B allows 1000 tokens, node A only 512: A's 400 reaches the caller with A's message.
    for stream in (False, True):
        response = front.chat(chat_body(max_tokens=600, stream=stream) | {"model": PUBLIC_NAME})
        assert_openai_error(response, 400, match="at most 512")
        assert response.json()["error"]["message"].startswith("Upstream:")


def test_upstream_auth_failure_is_a_502(node: Node, make_settings: Any, serve_node: Any) -> None:
    settings = upstream_settings(make_settings, f"{node.url}/v1", "sk-wrong")
    with serve_node(backend=UpstreamBackend.from_settings(settings), settings=settings) as b:
        response = b.chat(chat_body(max_tokens=2) | {"model": PUBLIC_NAME})
    assert_openai_error(response, 502, code="upstream_error", match="401")


def test_unreachable_upstream_is_a_502(make_settings: Any, serve_node: Any) -> None:
    settings = upstream_settings(make_settings, f"http://127.0.0.1:{free_port()}/v1", "k")
    with serve_node(backend=UpstreamBackend.from_settings(settings), settings=settings) as b:
        response = b.chat(chat_body(max_tokens=2) | {"model": PUBLIC_NAME})
        assert_openai_error(response, 502, code="upstream_error", match="could not be reached")
        # A stream that cannot start is an HTTP error too, not a 200 with an error event.
        streamed = b.chat(chat_body(max_tokens=2, stream=True) | {"model": PUBLIC_NAME})
        assert_openai_error(streamed, 502, code="upstream_error", match="could not be reached")
        with b.client() as http:
            assert http.get("/healthz").json()["running"] == 0


# An upstream that misbehaves: a stand-in server (httpx's in-process transport), not a model.


def misbehaving(handler: Any) -> UpstreamBackend:
    return UpstreamBackend(
        base_url="http://upstream.test/v1",
        upstream_model="m",
        model_id="m",
        transport=httpx.MockTransport(handler),
    )


PARAMS = ChatParams(messages=(ChatMessage("user", "hi"),), max_tokens=4)


def run_complete(backend: UpstreamBackend) -> Any:
    async def go() -> Any:
        prepared = await backend.prepare(PARAMS, default_max_tokens=4)
        return await backend.complete(prepared, deadline=time.monotonic() + 10)

    return asyncio.run(go())


def run_stream(backend: UpstreamBackend) -> list[Any]:
    async def go() -> list[Any]:
        prepared = await backend.prepare(PARAMS, default_max_tokens=4)
        return [event async for event in backend.stream(prepared, deadline=time.monotonic() + 10)]

    return asyncio.run(go())


def test_upstream_without_usage_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        if sent["stream"]:
            assert sent["stream_options"] == {"include_usage": True}
            chunk = {"choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": "stop"}]}
            return httpx.Response(200, text=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n")
        return httpx.Response(
            200, json={"choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}]}
        )

    with pytest.raises(UpstreamError, match="no token usage"):
        run_complete(misbehaving(handler))
    with pytest.raises(UpstreamError, match="no token usage"):
        run_stream(misbehaving(handler))


def test_upstream_with_invalid_usage_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        usage = {"prompt_tokens": -1, "completion_tokens": 2}
        return httpx.Response(200, json={"choices": [{"message": {"content": "x"}}], "usage": usage})

    with pytest.raises(UpstreamError, match="invalid token usage"):
        run_complete(misbehaving(handler))


def test_busy_upstream_is_a_503_with_its_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "9"}, json={"error": {"message": "overloaded"}})

    with pytest.raises(ServerBusy) as busy:
        run_complete(misbehaving(handler))
    assert busy.value.headers() == {"Retry-After": "9"}
