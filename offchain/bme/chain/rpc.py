"""Lean JSON-RPC clients for the hot paths: an asynchronous one (the relayer: logs, headers, calls, raw
transactions) and a blocking one over one kept-alive connection (a scenario replay's devnet).

web3.py's middleware stack costs about a millisecond of CPU per call, and httpx's asynchronous client about
half of that; the relayer makes a few calls per block, so it speaks JSON-RPC directly through aiohttp over
kept-alive connections, batching where it can. A scenario replay sends each of its transactions on its own,
where http.client costs a fraction of a millisecond per call and a requests session several times more.
Both raise `RpcError` for any failure, the node's or the transport's.
"""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bme.errors import ChainError


class RpcError(ChainError):
    """The node answered a call with an error, or did not answer."""

    def __init__(self, method: str, message: str, code: int | None = None, data: object = None) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data


class Rpc:
    """Asynchronous JSON-RPC over HTTP; every failure (transport or node error) raises `RpcError`."""

    def __init__(
        self, url: str, timeout: float = 10.0, on_error: Callable[[str], None] | None = None
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._on_error = on_error or (lambda _method: None)

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        reply = await self._post(method, payload)
        if not isinstance(reply, dict):
            self._on_error(method)
            raise RpcError(method, f"unexpected reply {reply!r:.200}")
        return self._result(method, reply)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one HTTP request; results in the order of `calls`."""
        if not calls:
            return []
        first = next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        self._ids = itertools.count(first + len(calls))
        replies = await self._post(calls[0][0], payload)
        if not isinstance(replies, list) or len(replies) != len(calls):
            self._on_error(calls[0][0])
            raise RpcError(calls[0][0], "the node did not answer the batch")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        return [self._result(m, by_id.get(first + i, {})) for i, (m, _p) in enumerate(calls)]

    async def _post(self, method: str, payload: Any) -> Any:
        if self._session is None:  # created on the running loop, as aiohttp requires
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=8),
                headers={"Content-Type": "application/json"},
            )
        try:
            async with self._session.post(self.url, data=json.dumps(payload)) as response:
                if response.status != 200:
                    raise aiohttp.ClientResponseError(
                        response.request_info, (), status=response.status, message=response.reason or ""
                    )
                return json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._on_error(method)
            raise RpcError(method, f"{type(exc).__name__}: {exc}") from None

    def _result(self, method: str, reply: dict[str, Any]) -> Any:
        if "error" in reply:
            self._on_error(method)
            err = reply["error"] or {}
            raise RpcError(method, str(err.get("message", err)), err.get("code"), err.get("data"))
        if "result" not in reply:
            self._on_error(method)
            raise RpcError(method, "no result in the reply")
        return reply["result"]

    async def block_number(self) -> int:
        return int(await self.call("eth_blockNumber"), 16)

    async def block_hash(self, number: int) -> str | None:
        """The canonical hash at `number`, or None if the node has no such block (yet)."""
        block = await self.call("eth_getBlockByNumber", [hex(number), False])
        return None if block is None else str(block["hash"])

    async def get_logs(self, addresses: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
        logs = await self.call(
            "eth_getLogs", [{"address": addresses, "fromBlock": hex(from_block), "toBlock": hex(to_block)}]
        )
        return list(logs)

    async def eth_call(self, to: str, data: str, block: str = "latest") -> str:
        return str(await self.call("eth_call", [{"to": to, "data": data}, block]))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class KeepAliveRpc:
    """Blocking JSON-RPC over one kept-alive HTTP connection, for one thread that makes one call at a time;
    every failure raises `RpcError`, its message naming the node as `name`."""

    def __init__(self, url: str, *, timeout: float = 300.0, name: str = "the node") -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"{url!r} is not an http:// URL")
        self.url = url
        self.name = name
        self._path = parts.path or "/"
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        self._next_id = 0

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The result of one call."""
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """The results of several calls sent in one request, in the order of `calls`."""
        if not calls:
            return []
        first = self._next_id
        self._next_id += len(calls)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        replies = self._post(calls[0][0], payload)
        if not isinstance(replies, list):
            raise RpcError(calls[0][0], f"{self.name} refused a batch: {replies!r:.200}")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        results = []
        for i, (method, _params) in enumerate(calls):
            reply = by_id.get(first + i)
            if reply is None or "error" in reply:
                err = (reply or {}).get("error") or {}
                message = str(err.get("message", err)) if isinstance(err, dict) else str(err)
                code = err.get("code") if isinstance(err, dict) else None
                data = err.get("data") if isinstance(err, dict) else None
                raise RpcError(method, f"{self.name}: {message or 'no answer'}", code, data)
            results.append(reply["result"])
        return results

    def _post(self, method: str, payload: object) -> Any:
        body = json.dumps(payload).encode()
        for attempt in (1, 2):  # a node may close an idle kept-alive connection: reconnect once
            try:
                self._connection.request("POST", self._path, body, {"Content-Type": "application/json"})
                return json.loads(self._connection.getresponse().read())
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self._connection.close()
                if attempt == 2 or isinstance(exc, ValueError):
                    raise RpcError(method, f"{self.name} did not answer: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._connection.close()
