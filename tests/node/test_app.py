"""The node over real HTTP on loopback: usage, auth, limits, errors, streaming, health and metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from bme.credential import HEADER_SIGNATURE, JOB_PREFIX, issue_token, sign_request
from bme.node.app import CHAT_PATH

from .conftest import MODEL, PROMPT, Node, chat_body

if TYPE_CHECKING:
    from llama_cpp import Llama


def assert_openai_error(
    response: httpx.Response, status: int, *, code: str | None = None, match: str = ""
) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert match.lower() in error["message"].lower()
    if code is not None:
        assert error["code"] == code


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any] | str]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            yield data if data == "[DONE]" else json.loads(data)


def metric(node: Node, name: str, **labels: str) -> float:
    value = node.app.state.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


# --- completions and usage ----------------------------------------------------------------------------------


def test_chat_completion_reports_exact_usage(node: Node, reference_llama: Llama) -> None:
    response = node.chat(chat_body(max_tokens=10))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    llama = reference_llama
    templated = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    )
    prompt_tokens = len(llama.tokenize(templated.encode(), add_bos=False, special=True))
    completion_tokens = len(
        llama.tokenize(choice["message"]["content"].encode(), add_bos=False, special=False)
    )
    assert body["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 10,
        "total_tokens": prompt_tokens + 10,
    }
    assert completion_tokens == 10


def test_chat_completion_is_deterministic_at_temperature_zero(node: Node) -> None:
    first = node.chat(chat_body(max_tokens=12)).json()
    second = node.chat(chat_body(max_tokens=12)).json()
    assert first["id"] != second["id"]
    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]


def test_max_tokens_defaults_to_the_node_default(serve_node: Any) -> None:
    with serve_node(default_max_tokens=5) as node:
        body = chat_body()
        del body["max_tokens"]
        assert node.chat(body).json()["usage"]["completion_tokens"] == 5


def test_a_paid_job_asked_again_gets_its_first_answer_marked_replayed(serve_node: Any) -> None:
    body = chat_body(max_tokens=2, user=f"{JOB_PREFIX}0x{'5a' * 32}")
    with serve_node() as node:  # its own journal: the shared node's counts no paid job
        first, again = node.chat(body), node.chat(body)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert "X-BME-Replayed" not in first.headers
    assert again.headers["X-BME-Replayed"] == "true"
    assert again.json() == first.json()  # the same completion, its id included: the job ran once


# --- who may call -------------------------------------------------------------------------------------------


def test_unauthenticated_requests_get_401_without_touching_the_model(
    node: Node, stranger: LocalAccount
) -> None:
    raw = json.dumps(chat_body(max_tokens=2)).encode()
    other_node = stranger.address
    attempts: dict[str, dict[str, str]] = {
        "missing": {},
        "forged": sign_request(stranger, "POST", CHAT_PATH, raw, operator=node.operator.address),
        "stale": sign_request(
            node.relayer,
            "POST",
            CHAT_PATH,
            raw,
            operator=node.operator.address,
            timestamp=int(time.time()) - 120,
        ),
        "other-body": sign_request(
            node.relayer, "POST", CHAT_PATH, raw + b" ", operator=node.operator.address
        ),
        "other-node": sign_request(node.relayer, "POST", CHAT_PATH, raw, operator=other_node),
        "openai-key": {"Authorization": "Bearer sk-proj-123"},
        "expired-token": {
            "Authorization": "Bearer "
            + issue_token(node.relayer, operator=node.operator.address, ttl_s=10, now=time.time() - 60)
        },
    }
    before = node.spy.calls
    with node.client() as http:
        for name, headers in attempts.items():
            response = http.post(
                CHAT_PATH, content=raw, headers=headers | {"Content-Type": "application/json"}
            )
            assert_openai_error(response, 401, code="invalid_api_key")
            assert "WWW-Authenticate" in response.headers, name
    assert node.spy.calls == before


def test_replayed_request_gets_401(node: Node) -> None:
    raw, headers = node.signed(chat_body(max_tokens=2))
    with node.client() as http:
        assert http.post(CHAT_PATH, content=raw, headers=headers).status_code == 200
        calls = node.spy.calls
        replay = http.post(CHAT_PATH, content=raw, headers=headers)
    assert_openai_error(replay, 401, match="replayed")
    assert node.spy.calls == calls


def test_unauthenticated_malformed_request_gets_401_not_400(node: Node) -> None:
    with node.client() as http:
        response = http.post(CHAT_PATH, content=b"{not json", headers={"Content-Type": "application/json"})
    assert_openai_error(response, 401)


def test_relayer_bearer_token_is_accepted(node: Node) -> None:
    token = issue_token(node.relayer, operator=node.operator.address, ttl_s=60)
    with node.client() as http:
        response = http.post(
            CHAT_PATH, json=chat_body(max_tokens=2), headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 2


# --- bad requests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"model": "SmolLM2-135M-Instruct", "messages": [', "could not parse the JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b'{"model": "SmolLM2-135M-Instruct"}', "messages"),
        (b'{"model": "SmolLM2-135M-Instruct", "messages": []}', "messages"),
        (b'{"model": "SmolLM2-135M-Instruct", "messages": [{"role": "wizard", "content": "x"}]}', "role"),
        (
            json.dumps(chat_body("x") | {"temperature": 9}).encode(),
            "temperature",
        ),
        (b'{"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "x"}], "n": 2}', "n"),
        (
            json.dumps(chat_body("x") | {"tools": [{}]}).encode(),
            "tool",
        ),
        (b"\xff\xfe", "could not parse"),
    ],
    ids=[
        "truncated",
        "array",
        "no-messages",
        "empty-messages",
        "bad-role",
        "temperature",
        "n",
        "tools",
        "not-utf8",
    ],
)
def test_malformed_requests_get_400(node: Node, raw: bytes, match: str) -> None:
    before = node.spy.calls
    response = node.chat(raw)
    assert_openai_error(response, 400, match=match)
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert node.spy.calls == before


def test_unknown_model_gets_404(node: Node) -> None:
    response = node.chat(chat_body() | {"model": "gpt-4o"})
    assert_openai_error(response, 404, code="model_not_found", match="gpt-4o")


def test_max_tokens_over_the_limit_gets_400(serve_node: Any) -> None:
    with serve_node(max_tokens_limit=32, default_max_tokens=16) as node:
        response = node.chat(chat_body(max_tokens=33))
        assert_openai_error(response, 400, match="at most 32")
        assert response.json()["error"]["param"] == "max_tokens"
        assert node.spy.calls == 0
        assert node.chat(chat_body(max_tokens=2)).status_code == 200


def test_prompt_over_the_token_limit_gets_400(serve_node: Any) -> None:
    with serve_node(max_prompt_tokens=64) as node:
        response = node.chat(chat_body("paint " * 60))
        assert_openai_error(response, 400, code="context_length_exceeded", match="at most 64")
        assert node.chat(chat_body("paint " * 5, max_tokens=1)).status_code == 200


def test_prompt_over_the_character_limit_gets_400(serve_node: Any) -> None:
    with serve_node(max_prompt_chars=100) as node:
        response = node.chat(chat_body("x" * 101))
        assert_openai_error(response, 400, code="context_length_exceeded", match="characters")
        assert node.spy.calls == 0


def test_body_over_the_byte_limit_gets_413(serve_node: Any) -> None:
    with serve_node(max_body_bytes=2048) as node:
        response = node.chat(chat_body("y" * 4096))
        assert_openai_error(response, 413, code="request_too_large")
        assert node.spy.calls == 0


def test_unknown_route_gets_an_openai_error(node: Node) -> None:
    with node.client() as http:
        assert_openai_error(http.get("/v1/engines"), 404)
        assert_openai_error(http.get(CHAT_PATH), 405)


# --- queue, timeouts ----------------------------------------------------------------------------------------


def test_full_queue_gets_503_with_retry_after(serve_node: Any) -> None:
    with serve_node(max_concurrency=1, max_queue=1, retry_after_s=3) as node:
        first_chunk = threading.Event()
        release_first = threading.Event()
        queued_result: list[httpx.Response] = []

        def long_stream() -> None:
            raw, headers = node.signed(chat_body(max_tokens=400, stream=True))
            with (
                node.client() as http,
                http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response,
            ):
                for _ in response.iter_lines():
                    first_chunk.set()
                    if release_first.wait(timeout=0):
                        break  # hang up mid-stream: the node must free the slot

        def queued() -> None:
            queued_result.append(node.chat(chat_body(max_tokens=2)))

        running = threading.Thread(target=long_stream)
        running.start()
        assert first_chunk.wait(timeout=60)
        waiting = threading.Thread(target=queued)
        waiting.start()
        with node.client() as http:
            deadline = time.monotonic() + 30
            while http.get("/healthz").json()["queued"] != 1:
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.01)
            assert metric(node, "bme_node_queue_depth") == 1
            calls = node.spy.calls
            refused = node.chat(chat_body(max_tokens=2))
        assert_openai_error(refused, 503, code="server_busy")
        assert refused.headers["Retry-After"] == "3"
        assert node.spy.calls == calls + 1  # prepared (tokenized), never run
        release_first.set()
        running.join(timeout=60)
        waiting.join(timeout=60)
        assert queued_result and queued_result[0].status_code == 200, queued_result
        with node.client() as http:
            health = http.get("/healthz").json()
        assert (health["running"], health["queued"]) == (0, 0)


def test_request_over_the_timeout_gets_504(serve_node: Any) -> None:
    with serve_node(request_timeout_s=0.5, max_tokens_limit=512) as node:
        started = time.monotonic()
        response = node.chat(chat_body(max_tokens=500))
        assert_openai_error(response, 504, code="timeout")
        assert time.monotonic() - started < 10
        assert node.chat(chat_body(max_tokens=1)).status_code == 200  # the slot and the model came back


def test_stream_over_the_timeout_ends_with_an_error_event(serve_node: Any) -> None:
    with serve_node(request_timeout_s=0.5, max_tokens_limit=512) as node:
        raw, headers = node.signed(chat_body(max_tokens=500, stream=True))
        with node.client() as http, http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response:
            assert response.status_code == 200  # it started in time
            events = list(sse_events(response))
        assert "[DONE]" not in events
        last = events[-1]
        assert isinstance(last, dict) and last["error"]["code"] == "timeout"
        assert any(
            isinstance(e, dict) and e.get("choices") and e["choices"][0]["delta"].get("content")
            for e in events
        )
        assert metric(node, "bme_node_rejections_total", reason="timeout") == 1
        with node.client() as http:
            assert http.get("/healthz").json()["running"] == 0


# --- streaming ----------------------------------------------------------------------------------------------


def test_streaming_sends_openai_chunks_then_usage_then_done(node: Node) -> None:
    whole = node.chat(chat_body(max_tokens=12)).json()
    raw, headers = node.signed(chat_body(max_tokens=12, stream=True, stream_options={"include_usage": True}))
    with node.client() as http, http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response))
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]
    assert len(chunks) > 4  # text arrives token by token, not in one piece


def test_streaming_without_include_usage_sends_no_usage_chunk(node: Node) -> None:
    raw, headers = node.signed(chat_body(max_tokens=4, stream=True))
    with node.client() as http, http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response:
        events = list(sse_events(response))
    chunks = [e for e in events if isinstance(e, dict)]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


# --- health and metrics -------------------------------------------------------------------------------------


def test_healthz_reports_backend_and_queue(node: Node) -> None:
    with node.client() as http:
        health = http.get("/healthz").json()
    assert health == {
        "status": "ok",
        "backend": "embedded",
        "model": MODEL,
        "running": 0,
        "queued": 0,
        "slots": node.settings.max_concurrency,
        "max_queue": node.settings.max_queue,
        "jobs_executed": 0,
        "jobs_replayed": 0,
    }


def test_models_lists_the_served_model_without_credentials(node: Node) -> None:
    with node.client() as http:
        listed = http.get("/v1/models").json()
        assert [m["id"] for m in listed["data"]] == [MODEL]
        assert http.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
        assert_openai_error(http.get("/v1/models/gpt-4o"), 404, code="model_not_found")


def test_metrics_count_requests_tokens_latency_and_queue(serve_node: Any) -> None:
    with serve_node() as node:
        usage = node.chat(chat_body(max_tokens=3)).json()["usage"]
        node.chat(chat_body(max_tokens=3) | {"model": "nope"})
        raw, headers = node.signed(chat_body(max_tokens=3, stream=True))
        with node.client() as http, http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response:
            list(response.iter_lines())
        with node.client() as http:
            exposition = http.get("/metrics")
        assert exposition.status_code == 200
        assert exposition.headers["content-type"].startswith("text/plain")
        text = exposition.text
        for name in (
            "bme_node_requests_total",
            "bme_node_prompt_tokens_total",
            "bme_node_completion_tokens_total",
            "bme_node_request_duration_seconds_bucket",
            "bme_node_time_to_first_token_seconds_bucket",
            "bme_node_queue_depth",
            "bme_node_inflight",
        ):
            assert name in text
        chat = {"endpoint": CHAT_PATH}
        assert metric(node, "bme_node_requests_total", status="200", **chat) == 2
        assert metric(node, "bme_node_requests_total", status="404", **chat) == 1
        assert metric(node, "bme_node_prompt_tokens_total", model=MODEL) == 2 * usage["prompt_tokens"]
        assert metric(node, "bme_node_completion_tokens_total", model=MODEL) == 6
        assert metric(node, "bme_node_request_duration_seconds_count", **chat) == 3
        assert metric(node, "bme_node_time_to_first_token_seconds_count") == 1
        assert metric(node, "bme_node_rejections_total", reason="model_not_found") == 1
        assert metric(node, "bme_node_queue_depth") == 0


def test_signature_header_case_does_not_matter(node: Node) -> None:
    raw, headers = node.signed(chat_body(max_tokens=1))
    lowered = {k.lower(): v for k, v in headers.items()}
    assert HEADER_SIGNATURE.lower() in lowered
    with node.client() as http:
        assert http.post(CHAT_PATH, content=raw, headers=lowered).status_code == 200
