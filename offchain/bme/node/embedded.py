"""The embedded backend: a GGUF model run on the CPU by llama-cpp-python, in supervised worker processes.

The HTTP server's process never imports llama_cpp: the model runs in worker processes (`bme.node.worker`,
started and restarted by `bme.node.supervisor`), so a crash of the native runtime (SIGILL from a build for
another CPU, a segfault) costs the requests it was running a 503 that names the crash, not the node.
This class speaks the `Backend` protocol over them: a prompt is rendered in the model's chat template and
tokenized by a worker (`prepare`), then a free worker generates it, sending text token by token when
streaming and all at once otherwise.

Usage is exact, as llama-cpp-python counts it (see `bme.node.engine`): prompt tokens are the tokenized
templated prompt, completion tokens are the tokens sampled, not counting the end-of-generation token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from typing import Any

from bme.gguf.files import resolve_model_path
from bme.node.backends import (
    BackendHealth,
    ChatParams,
    Completion,
    Finished,
    PreparedChat,
    StreamEvent,
    collect,
)
from bme.node.errors import NodeError, PromptTooLarge, RequestTimeout
from bme.node.runtime import RuntimeReport
from bme.node.settings import NodeSettings
from bme.node.stops import stop_holdback as stop_holdback
from bme.node.supervisor import RestartPolicy, Supervisor
from bme.node.wire import Generate, Prepare, Prepared, WorkerConfig
from bme.node.worker_process import Sink, WorkerProcess

log = logging.getLogger(__name__)

HANG_GRACE_S = 10.0
"""How long past a request's deadline a worker may stay silent before it is taken for hung and killed
(it stops at the deadline itself; only a runtime stuck in native code overruns)."""

PREPARE_TIMEOUT_S = 30.0
"""Longest a worker may take to render and tokenize a prompt (milliseconds, normally)."""


class _Job:
    """One completion's link to the worker running it, so that a client who leaves can stop it."""

    def __init__(self, request_id: int) -> None:
        self.id = request_id
        self.cancelled = threading.Event()
        self.finished = False
        self.worker: WorkerProcess | None = None
        self._lock = threading.Lock()

    def attach(self, worker: WorkerProcess) -> bool:
        with self._lock:
            if self.cancelled.is_set():
                return False
            self.worker = worker
            return True

    def cancel(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.cancelled.set()
            worker = self.worker
        if worker is not None:
            worker.cancel(self.id)


_HUNG = object()


class EmbeddedBackend:
    """Completions from llama-cpp-python model instances in supervised worker processes."""

    def __init__(self, supervisor: Supervisor, *, model_id: str, slots: int) -> None:
        """Takes a started supervisor (see `from_settings`)."""
        if supervisor.ready_info is None:
            raise ValueError("the supervisor must be started")
        self._supervisor = supervisor
        self._model_id = model_id
        self._n_ctx = supervisor.ready_info.n_ctx
        self._ids = count(1)
        # Threads beyond the slots only wait for a worker; they let several servers share one backend.
        self._executor = ThreadPoolExecutor(max_workers=slots + 8, thread_name_prefix="bme-embedded")

    @classmethod
    def from_settings(cls, settings: NodeSettings) -> EmbeddedBackend:
        """Starts the workers and returns once each has loaded the model and generated a token.

        Raises ModelRuntimeFailed with a one-line reason (the signal, when the runtime crashed) if not.
        """
        path = resolve_model_path(settings.model_path)
        config = WorkerConfig(
            model_path=str(path),
            n_ctx=settings.n_ctx,
            n_threads=settings.threads_per_instance,
            n_batch=settings.n_batch,
            seed=settings.seed,
        )
        policy = RestartPolicy(
            attempts=settings.worker_restart_attempts,
            backoff_s=settings.worker_restart_backoff_s,
            start_timeout_s=settings.worker_start_timeout_s,
        )
        supervisor = Supervisor(config, slots=settings.max_concurrency, policy=policy)
        started = time.perf_counter()
        supervisor.start()
        log.info(
            "loaded and warmed up %s in %d worker process%s in %.2fs",
            path.name,
            settings.max_concurrency,
            "es" if settings.max_concurrency > 1 else "",
            time.perf_counter() - started,
        )
        return cls(supervisor, model_id=settings.served_model, slots=settings.max_concurrency)

    @property
    def kind(self) -> str:
        return "embedded"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def runtime(self) -> RuntimeReport | None:
        """Which build of llama-cpp-python the workers run, and whether it fits its CPU baseline."""
        return self._supervisor.runtime

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the model workers that are up."""
        return self._supervisor.pids

    def health(self) -> BackendHealth:
        return self._supervisor.health()

    def count_prompt_tokens(self, params: ChatParams) -> int:
        """The exact prompt size of a request, chat template included (blocks; not for the event loop)."""
        future = self._supervisor.any_worker().call(Prepare(next(self._ids), params))
        return len(future.result(timeout=PREPARE_TIMEOUT_S).token_ids)

    async def prepare(self, params: ChatParams, *, default_max_tokens: int) -> PreparedChat:
        future = self._supervisor.any_worker().call(Prepare(next(self._ids), params))
        try:
            prompt: Prepared = await asyncio.wait_for(asyncio.wrap_future(future), PREPARE_TIMEOUT_S)
        except TimeoutError:
            raise RequestTimeout("The model did not tokenize the prompt in time.") from None
        n_prompt = len(prompt.token_ids)
        room = self._n_ctx - n_prompt
        if params.max_tokens is None:
            max_tokens = min(default_max_tokens, room)
        elif params.max_tokens > room:
            raise PromptTooLarge(
                f"The prompt ({n_prompt} tokens) plus max_tokens ({params.max_tokens}) exceeds the "
                f"model's context of {self._n_ctx} tokens.",
                param="max_tokens",
            )
        else:
            max_tokens = params.max_tokens
        if max_tokens < 1:
            raise PromptTooLarge(f"The prompt ({n_prompt} tokens) fills the context of {self._n_ctx}.")
        # The stops (the request's and the template's) travel in params so the worker needs nothing else.
        merged = ChatParams(
            messages=params.messages,
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=prompt.stop,
            seed=params.seed,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
        )
        return PreparedChat(
            params=merged, max_tokens=max_tokens, prompt_tokens=n_prompt, prompt_token_ids=prompt.token_ids
        )

    async def complete(self, prepared: PreparedChat, *, deadline: float) -> Completion:
        # The text crosses from the worker once, at the end, not token by token.
        return await collect(self._events(prepared, deadline, incremental=False))

    def stream(self, prepared: PreparedChat, *, deadline: float) -> AsyncGenerator[StreamEvent, None]:
        return self._events(prepared, deadline, incremental=True)

    async def _events(
        self, prepared: PreparedChat, deadline: float, *, incremental: bool
    ) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        job = _Job(next(self._ids))

        def sink(item: StreamEvent | NodeError) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                job.cancel()

        loop.run_in_executor(self._executor, self._start, job, prepared, sink, deadline, incremental)
        # A worker stops at the deadline itself; one that stays silent long after is stuck, not slow.
        watchdog = loop.call_later(
            max(0.0, deadline - time.monotonic()) + HANG_GRACE_S, events.put_nowait, _HUNG
        )
        try:
            while True:
                item = await events.get()
                if item is _HUNG:
                    raise self._hung(job)
                if isinstance(item, NodeError):
                    job.finished = True
                    raise item
                yield item
                if isinstance(item, Finished):
                    job.finished = True
                    return
        finally:
            watchdog.cancel()
            job.cancel()

    def _start(
        self, job: _Job, prepared: PreparedChat, sink: Sink, deadline: float, incremental: bool
    ) -> None:
        """Executor thread: waits for a free worker and starts the completion on it."""
        try:
            worker = self._supervisor.acquire(deadline, job.cancelled)
            if worker is None:
                return
            if not job.attach(worker):
                self._supervisor.release(worker)
                return
            assert prepared.prompt_token_ids is not None, "embedded requests are prepared by this backend"
            request = Generate(
                id=job.id,
                prompt_ids=prepared.prompt_token_ids,
                params=prepared.params,
                max_tokens=prepared.max_tokens,
                timeout_s=deadline - time.monotonic(),
                incremental=incremental,
            )
            worker.generate(request, sink)
            if job.cancelled.is_set():  # the client left while the request was on its way
                worker.cancel(job.id)
        except NodeError as exc:
            sink(exc)
        except Exception as exc:
            log.exception("starting an embedded completion failed")
            sink(NodeError(f"The model failed: {exc}"))

    def _hung(self, job: _Job) -> RequestTimeout:
        worker = job.worker
        if worker is not None:
            log.error(
                "%s (pid %d) is still busy %.0fs past its request's deadline; killing it",
                worker.name,
                worker.pid,
                HANG_GRACE_S,
            )
            worker.kill(f"it was still busy {HANG_GRACE_S:.0f}s past its request's deadline")
        return RequestTimeout("The completion did not finish in time.")

    def close(self) -> None:
        """Stops the workers (blocking, for callers without an event loop)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._supervisor.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
