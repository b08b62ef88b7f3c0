"""The relayer service: ingestion, dispatch, settlement and the HTTP API on one event loop.

Ingestion and settlement run only in the relayer holding the `leader` lease in the database; every relayer
dispatches, taking jobs with row leases. A new-block subscription (WebSocket) wakes the poller early;
polling at `poll_interval_s` goes on without it, so a lost subscription costs latency, never events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import uvicorn
from eth_account.signers.local import LocalAccount
from sqlalchemy.exc import SQLAlchemyError

from bme.chain.deploy import Deployment
from bme.chain.events import Event, EventDecoder
from bme.chain.rpc import Rpc, RpcError
from bme.commitment import Domain
from bme.errors import ConfigError
from bme.job_states import TERMINAL
from bme.relayer.api import ApiLimits, create_api, wait_any
from bme.relayer.dispatch import Dispatcher
from bme.relayer.figures import ChainFigures
from bme.relayer.ingest import Ingestor
from bme.relayer.metrics import RelayerMetrics
from bme.relayer.settings import RelayerSettings
from bme.relayer.settle import Settler
from bme.relayer.store import JobStore, LeaseLost
from bme.relayer.usage import UsageCounting
from bme.retry import Backoff

log = logging.getLogger(__name__)

LEADER = "leader"


def _announced_header(message: str | bytes) -> dict[str, Any] | None:
    """The block header of a `newHeads` notification (None for anything else)."""
    try:
        header = json.loads(message)["params"]["result"]
    except (ValueError, KeyError, TypeError):
        return None
    return header if isinstance(header, dict) and "hash" in header else None


class Broadcast:
    """Wakes every waiter when something changed; waiters then re-read what they care about."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        await wait_any(self._event, timeout)


class ChainClock:
    """The chain's time, the clock of the jobs' deadlines (a devnet's may run ahead of the wall clock): the
    latest block's timestamp plus the time since that block was first seen (a quiet chain mines no block, but
    its next block's time is at least that). The wall clock until a block is seen."""

    def __init__(self) -> None:
        self._latest: tuple[str, int, float] | None = None  # hash, timestamp, when first seen (monotonic)

    def saw(self, block_hash: str, timestamp: int) -> None:
        if self._latest is None or self._latest[0] != block_hash:
            self._latest = (block_hash, timestamp, time.monotonic())

    @property
    def mined_at(self) -> int | None:
        """The latest block's timestamp, or None before one is seen."""
        return None if self._latest is None else self._latest[1]

    def now(self) -> float:
        if self._latest is None:
            return time.time()
        return self._latest[1] + int(time.monotonic() - self._latest[2])


class Relayer:
    """One relayer process's work. `run()` returns when `stop()` is called or the API server exits."""

    def __init__(self, settings: RelayerSettings, account: LocalAccount) -> None:
        self.settings = settings
        self.account = account
        self.metrics = RelayerMetrics()
        try:
            self.deployment = Deployment.load(settings.deployment)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read the deployment {settings.deployment}: {exc}") from None
        if not self.deployment.registry:
            raise ConfigError(f"the deployment {settings.deployment} names no operator registry")
        self.store = JobStore(settings.database_url, owner=settings.instance)
        self.store.fence = LEADER  # ingestion and settlement write only while this relayer leads
        self.rpc = Rpc(
            settings.rpc_url,
            settings.rpc_timeout_s,
            on_error=lambda m: self.metrics.rpc_errors.labels(method=m).inc(),
        )
        self.domain = Domain(self.deployment.chain_id, self.deployment.escrow)
        self.metrics.watch_jobs(self.store.counts)
        self.new_block = asyncio.Event()
        #: The newest block header the subscription announced, for the next poll (then cleared).
        self._announced: dict[str, Any] | None = None
        self.work = asyncio.Event()
        #: Set when a full batch of completions is waiting to be settled (counted by `_on_completed`).
        self.batch_full = asyncio.Event()
        self._completions = 0
        self.changed = Broadcast()
        self.chain_clock = ChainClock()
        self.usage = UsageCounting(settings.tokenizers)
        self.dispatcher = Dispatcher(
            self.store,
            account,
            self.metrics,
            timeout_s=settings.dispatch_timeout_s,
            max_tries_per_operator=settings.max_tries_per_operator,
            concurrency=settings.concurrency,
            on_completed=self._on_completed,
            usage=self.usage,
            settle_margin_s=settings.deadline_margin_s,
            chain_clock=self.chain_clock.now,
        )
        self.decoder = EventDecoder(self.deployment.escrow, self.deployment.registry)
        self.settler = Settler(
            self.rpc,
            self.store,
            account,
            self.deployment.escrow,
            self.deployment.chain_id,
            self.metrics,
            self.decoder,
            batch_size=settings.batch_size,
            batch_age_s=settings.batch_age_s,
            stuck_after_s=settings.stuck_after_s,
            deadline_margin_s=settings.deadline_margin_s,
        )
        self.ingestor: Ingestor | None = None
        self.leader = False
        self._leader_until = 0.0
        self._last_poll = 0.0
        self._stopping = asyncio.Event()
        self.api = create_api(
            self.store,
            self.domain,
            ApiLimits(
                settings.max_request_bytes,
                settings.max_tokens_limit,
                settings.rate_per_minute,
                settle_margin_s=settings.deadline_margin_s,
            ),
            self,
            extra_routes=ChainFigures(settings.rpc_url, self.deployment).install,
        )
        self.server: uvicorn.Server | None = None

    # -- wiring ------------------------------------------------------------------------------------------

    def _count_events(self, events: list[Event]) -> None:
        for e in events:
            self.metrics.events.labels(event=e.name).inc()

    def revealed(self, job_id: str) -> None:
        """A reveal made a job ready: dispatch wakes up, long-polls look again."""
        self.work.set()
        self.changed.notify()

    def _on_completed(self, _job_id: str) -> None:
        self._completions += 1
        if self._completions >= self.settings.batch_size:
            self.batch_full.set()
        self.changed.notify()

    async def job_changed(self, job_id: str, timeout: float, targets: frozenset[str] | None) -> None:
        """Returns when the job reaches one of `targets` (None: any other state), or ends, or on timeout."""
        first = self.store.job_state(job_id)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            await self.changed.wait(min(left, 0.1))
            state = self.store.job_state(job_id)
            if state is None:
                continue
            if state in TERMINAL or (state in targets if targets is not None else state != first):
                return

    def prometheus(self) -> bytes:
        return self.metrics.render()

    def chain_now(self) -> float:
        return self.chain_clock.now()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        counts = self.store.counts()
        lag = time.monotonic() - self._last_poll if self._last_poll else None
        ok = self.ingestor is not None and (
            not self.leader or (lag is not None and lag < 3 * self.settings.poll_interval_s + 10)
        )
        return ok, {"leader": self.leader, "seconds_since_poll": lag, "jobs": counts}

    def stop(self) -> None:
        self._stopping.set()
        if self.server is not None:
            self.server.should_exit = True

    async def _hold_leadership(self) -> bool:
        now = time.time()
        if now > self._leader_until - self.settings.leader_ttl_s / 2:
            was_leader = self.leader
            self.leader = self.store.hold_lease(LEADER, self.settings.leader_ttl_s, now)
            if self.leader and not was_leader:
                # Another relayer may have led meanwhile: take the checkpoint and the nonce afresh.
                self.settler.forget_nonce()
                if self.ingestor is not None:
                    self.ingestor.forget_checkpoint()
            self._leader_until = now + self.settings.leader_ttl_s if self.leader else 0.0
        return self.leader

    # -- start -------------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        """Waits for the chain, checks it is the deployment's, and sets up ingestion."""
        backoff = Backoff(first=0.5, cap=5.0)
        while not self._stopping.is_set():
            try:
                chain_id = int(await self.rpc.call("eth_chainId"), 16)
                break
            except RpcError as exc:
                delay = backoff.failed()
                log.warning(
                    "waiting for the chain at %s: %s (again in %.1f s)", self.settings.rpc_url, exc, delay
                )
                await wait_any(self._stopping, delay)
        else:
            return
        if chain_id != self.deployment.chain_id:
            raise ConfigError(
                f"the RPC serves chain {chain_id}; the deployment is on chain {self.deployment.chain_id}"
            )
        with contextlib.suppress(RpcError):  # read again every 2 s (`_expire_loop`)
            await self._read_chain_clock()
        self.ingestor = Ingestor(
            self.rpc,
            self.store,
            self.decoder,
            start_block=self.deployment.first_block,
            confirmations=self.settings.confirmations_for(chain_id),
            max_range=self.settings.max_block_range,
            on_events=self._count_events,
        )

    async def run(self) -> None:
        released = self.store.release_leases()
        if released:
            log.info("took back %s jobs this relayer held before its restart", released)
        config = uvicorn.Config(
            self.api, host=self.settings.host, port=self.settings.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        server_task = asyncio.create_task(self.server.serve(), name="api")
        try:
            await self._connect()
        except BaseException:
            self.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server_task, 5)
            raise
        tasks = [
            asyncio.create_task(self._ingest_loop(), name="ingest"),
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._settle_loop(), name="settle"),
            asyncio.create_task(self._expire_loop(), name="expire"),
        ]
        if self.settings.ws_url:
            tasks.append(asyncio.create_task(self._subscribe_loop(self.settings.ws_url), name="subscribe"))
        stop_task = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait(
                [server_task, stop_task, *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stop_task and task is not server_task and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if server_task in done and not self._stopping.is_set() and not self.server.started:
                raise ConfigError(f"the API cannot listen on {self.settings.host}:{self.settings.port}")
        finally:
            self.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stop_task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server_task, 5)
            await self.dispatcher.aclose()
            await self.rpc.aclose()
            self.usage.close()
            self.store.engine.dispose()

    # -- loops -------------------------------------------------------------------------------------------

    async def _ingest_loop(self) -> None:
        assert self.ingestor is not None
        backoff = Backoff(first=self.settings.poll_interval_s, cap=10.0)
        while not self._stopping.is_set():
            self.new_block.clear()
            try:
                leader = await self._hold_leadership()
            except SQLAlchemyError as exc:
                delay = backoff.failed()
                log.warning("the store is unavailable: %s (retrying in %.1f s)", exc, delay)
                await wait_any(self._stopping, delay)
                continue
            if leader:
                announced, self._announced = self._announced, None
                try:
                    outcome = await self.ingestor.poll(announced)
                except LeaseLost as exc:
                    log.warning("ingestion: %s", exc)
                    self.leader, self._leader_until = False, 0.0
                    continue
                except (RpcError, SQLAlchemyError) as exc:
                    delay = backoff.failed()
                    log.warning("ingestion: %s (retrying in %.1f s)", exc, delay)
                    await wait_any(self._stopping, delay)
                    continue
                backoff.succeeded()
                self._last_poll = time.monotonic()
                self.metrics.head.set(outcome.head)
                self.metrics.checkpoint.set(outcome.checkpoint)
                if outcome.rolled_back_to is not None:
                    self.metrics.reorgs.inc()
                    self.work.set()
                    continue
                if outcome.ingested is not None:
                    if outcome.ingested.revealed:
                        self.work.set()
                    if outcome.ingested.settled or outcome.ingested.expired or outcome.ingested.opened:
                        self.changed.notify()
                if outcome.behind:
                    continue
            await wait_any(self.new_block, self.settings.poll_interval_s)

    async def _dispatch_loop(self) -> None:
        # The tokenizers (a fraction of a second each), read off the loop before the first job is dispatched.
        await asyncio.to_thread(self.usage.load)
        while not self._stopping.is_set():
            self.work.clear()
            try:
                started = self.dispatcher.dispatch_ready(self.settings.dispatch_timeout_s + 10)
            except SQLAlchemyError as exc:
                log.warning("dispatch: the store is unavailable: %s", exc)
                await wait_any(self._stopping, 2.0)
                continue
            if started == 0:
                await wait_any(self.work, 0.25)

    async def _settle_loop(self) -> None:
        backoff = Backoff(first=0.5, cap=10.0)
        while not self._stopping.is_set():
            self.batch_full.clear()
            self._completions = 0
            try:
                # Renewed here too: the ingest loop may be stuck on a slow RPC for longer than the lease.
                leader = await self._hold_leadership()
            except SQLAlchemyError:
                leader = False
            if leader:
                try:
                    settled = await self.settler.step()
                    backoff.succeeded()
                except LeaseLost as exc:
                    log.warning("settlement: %s", exc)
                    self.leader, self._leader_until = False, 0.0
                    continue
                except (RpcError, SQLAlchemyError) as exc:
                    delay = backoff.failed()
                    log.warning("settlement: %s (retrying in %.1f s)", exc, delay)
                    await wait_any(self._stopping, delay)
                    continue
                if settled:
                    self.changed.notify()
                    continue
            # The store is read again when a full batch has completed here, or after half a batch's age (a
            # job completed by another relayer sharing the database is seen then): not once per answer.
            await wait_any(self.batch_full, max(min(self.settings.batch_age_s, 1.0) / 2, 0.05))

    async def _read_chain_clock(self) -> None:
        block = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
        self.chain_clock.saw(block["hash"], int(block["timestamp"], 16))

    async def _expire_loop(self) -> None:
        """Every 2 s, the chain's clock is read (dispatch and the API judge deadlines by it); then, in the
        leader: jobs still waiting for an operator when a settlement could no longer make their deadline fail
        (their payers are told at once); jobs past their deadline expire."""
        while not self._stopping.is_set():
            await wait_any(self._stopping, 2.0)
            try:
                await self._read_chain_clock()
            except RpcError:
                continue
            if not self.leader:
                continue
            try:
                mined_at = self.chain_clock.mined_at
                assert mined_at is not None
                chain_now = self.chain_clock.now()
                failed = self.store.fail_unservable(chain_now, self.settings.deadline_margin_s)
                expired = self.store.expire_overdue(mined_at, 0.0)
            except (RpcError, SQLAlchemyError):
                continue
            if failed:
                self.metrics.jobs_failed.inc(len(failed))
                log.info("%s jobs failed: no operator served them in time to settle", len(failed))
                self.changed.notify()
            if expired:
                log.info(
                    "%s jobs passed their deadline unsettled; their payers may refund them", len(expired)
                )
                self.changed.notify()

    async def _subscribe_loop(self, url: str) -> None:
        """New-block notifications over WebSocket: a wake-up call for the poller, never a source of events."""
        from websockets.asyncio.client import connect

        backoff = Backoff(first=0.5, cap=10.0)
        while not self._stopping.is_set():
            try:
                async with connect(url, open_timeout=5, max_size=2**22) as ws:
                    await ws.send(
                        json.dumps(
                            {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
                        )
                    )
                    backoff.succeeded()
                    async for message in ws:
                        self._announced = _announced_header(message)
                        self.new_block.set()
            except (OSError, TimeoutError, Exception) as exc:  # any failure: reconnect later
                log.debug("new-block subscription lost: %s", exc)
            await wait_any(self._stopping, backoff.failed())
