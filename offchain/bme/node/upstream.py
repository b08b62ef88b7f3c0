"""The upstream backend: forwards to an OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, an API).

The node cannot count another server's tokens, so it reports the upstream's own usage: from the response
body, or, when streaming, from the final usage chunk it asks for with ``stream_options.include_usage``.
A completion whose upstream reports no usage is an error (502): without it the user cannot be charged.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from bme.node.backends import (
    BackendHealth,
    ChatParams,
    Completion,
    Finished,
    FinishReason,
    PreparedChat,
    StreamEvent,
    TextDelta,
    Usage,
)
from bme.node.errors import NodeError, RequestTimeout, ServerBusy, UpstreamError, UpstreamRejected
from bme.node.settings import NodeSettings


class UpstreamBackend:
    """Completions from an OpenAI-compatible server at `base_url` (the URL that ends in ``/v1``)."""

    def __init__(
        self,
        *,
        base_url: str,
        upstream_model: str,
        model_id: str,
        api_key: str | None = None,
        connect_timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(None, connect=connect_timeout_s),
            transport=transport,
        )
        self._upstream_model = upstream_model
        self._model_id = model_id

    @classmethod
    def from_settings(cls, settings: NodeSettings) -> UpstreamBackend:
        assert settings.upstream_url is not None and settings.upstream_model is not None  # settings check it
        key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key else None
        return cls(
            base_url=settings.upstream_url,
            upstream_model=settings.upstream_model,
            model_id=settings.served_model,
            api_key=key,
            connect_timeout_s=settings.upstream_connect_timeout_s,
        )

    @property
    def kind(self) -> str:
        return "upstream"

    @property
    def model_id(self) -> str:
        return self._model_id

    async def prepare(self, params: ChatParams, *, default_max_tokens: int) -> PreparedChat:
        # The upstream checks its own context; the node's character limit was applied before this.
        max_tokens = default_max_tokens if params.max_tokens is None else params.max_tokens
        return PreparedChat(params=params, max_tokens=max_tokens)

    def _payload(self, prepared: PreparedChat, *, stream: bool) -> dict[str, Any]:
        p = prepared.params
        payload: dict[str, Any] = {
            "model": self._upstream_model,
            "messages": [{"role": m.role, "content": m.content} for m in p.messages],
            "max_tokens": prepared.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "stream": stream,
        }
        if p.stop:
            payload["stop"] = list(p.stop)
        if p.seed is not None:
            payload["seed"] = p.seed
        if p.presence_penalty:
            payload["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            payload["frequency_penalty"] = p.frequency_penalty
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    async def complete(self, prepared: PreparedChat, *, deadline: float) -> Completion:
        try:
            response = await self._client.post(
                "chat/completions", json=self._payload(prepared, stream=False), timeout=_remaining(deadline)
            )
        except httpx.TimeoutException as exc:
            raise RequestTimeout("The upstream server did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"The upstream server could not be reached: {exc}") from exc
        if response.status_code != 200:
            raise _rejection(response.status_code, response.content, response.headers)
        try:
            body = response.json()
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            finish = _finish_reason(choice.get("finish_reason"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamError("The upstream server's answer is not an OpenAI chat completion.") from exc
        return Completion(text=text, finish_reason=finish, usage=_usage(body.get("usage")))

    async def stream(self, prepared: PreparedChat, *, deadline: float) -> AsyncGenerator[StreamEvent, None]:
        request = self._client.build_request(
            "POST",
            "chat/completions",
            json=self._payload(prepared, stream=True),
            timeout=_remaining(deadline),
        )
        finish: FinishReason = "length"
        usage: Usage | None = None
        try:
            response = await self._client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    raise _rejection(response.status_code, await response.aread(), response.headers)
                async for line in response.aiter_lines():
                    if time.monotonic() > deadline:
                        raise RequestTimeout("The upstream server did not finish in time.")
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = _json_object(data)
                    if "error" in chunk:
                        raise UpstreamError(f"The upstream server failed mid-stream: {chunk['error']}")
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
                    for choice in chunk.get("choices") or []:
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield TextDelta(content)
                        if choice.get("finish_reason"):
                            finish = _finish_reason(choice["finish_reason"])
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise RequestTimeout("The upstream server did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"The upstream server could not be reached: {exc}") from exc
        if usage is None:
            raise UpstreamError(
                "The upstream server's stream reported no token usage (stream_options.include_usage)."
            )
        yield Finished(finish, usage)

    def health(self) -> BackendHealth:
        """Always ready: the node does not probe the upstream; a failing one gets its requests a 502."""
        return BackendHealth(ready=True)

    async def aclose(self) -> None:
        await self._client.aclose()


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RequestTimeout("The request timed out before reaching the upstream server.")
    return remaining


def _json_object(data: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise UpstreamError("The upstream server sent data that is not JSON.") from exc
    if not isinstance(value, dict):
        raise UpstreamError("The upstream server sent JSON that is not an object.")
    return value


def _usage(raw: Any) -> Usage:
    """Usage from the upstream's report; both counts must be present non-negative integers."""
    if not isinstance(raw, dict):
        raise UpstreamError("The upstream server reported no token usage; the completion cannot be charged.")
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    for value in (prompt, completion):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UpstreamError(f"The upstream server reported invalid token usage: {raw!r}")
    assert isinstance(prompt, int) and isinstance(completion, int)
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _finish_reason(raw: Any) -> FinishReason:
    # Anything but a budget cut-off (e.g. "eos", "stop_sequence", "tool_calls") ended the answer normally.
    return "length" if raw == "length" else "stop"


def _rejection(status: int, content: bytes, headers: httpx.Headers) -> NodeError:
    """The node's error for an upstream's non-200 answer: 4xx are passed on, busy is 503, the rest 502."""
    message, code, param = f"The upstream server answered HTTP {status}.", None, None
    try:
        error = json.loads(content).get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = error.get("code") if isinstance(error.get("code"), str) else None
            param = error.get("param") if isinstance(error.get("param"), str) else None
        elif isinstance(error, str):
            message = error
    except (ValueError, AttributeError):
        pass
    if status in (429, 503):
        retry = headers.get("retry-after", "")
        return ServerBusy(f"Upstream busy: {message}", retry_after_s=int(retry) if retry.isdigit() else 1)
    if 400 <= status < 500 and status not in (401, 403, 408):
        return UpstreamRejected(f"Upstream: {message}", status_code=status, code=code, param=param)
    # The upstream's own auth, rate limit or server failures are the node's problem, not the caller's.
    return UpstreamError(f"Upstream failure (HTTP {status}): {message}")
