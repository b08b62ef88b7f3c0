"""The supervisor of the embedded model's worker processes: start, hand out, restart, give up.

One worker process per completion slot (`max_concurrency`), each holding one model instance: the weights are
memory-mapped from the same file, so the page cache shares them among the workers. A worker runs one
completion at a time; `acquire` hands out an idle one, and the worker comes back when its completion ends.

At start every worker must load the model and generate a token before `start` returns; any failure stops
the node there, with the one-line reason. Later, a worker that dies is restarted after a back-off that
doubles from `backoff_s`; while no worker is up the node is not ready (the reason says why), and requests
get a 503 naming the crash rather than waiting. After `attempts` consecutive failed restarts of a slot the
supervisor gives up: `health().failed` is set with the reason, and `bme operator serve` exits non-zero.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import count

from bme.node.backends import BackendHealth
from bme.node.errors import ModelRuntimeFailed, ModelUnavailable, RequestTimeout
from bme.node.runtime import RuntimeReport
from bme.node.wire import Ready, WorkerConfig
from bme.node.worker_process import WorkerProcess
from bme.retry import backoff_delay

log = logging.getLogger(__name__)

_WAIT_POLL_S = 0.05
"""How often a request waiting for a free worker looks whether its client is still there."""


@dataclass(frozen=True)
class RestartPolicy:
    """How a crashed worker is restarted, and when the supervisor gives up."""

    attempts: int = 5
    """Consecutive failed restarts of one slot before the node gives up (0: give up at the first crash)."""
    backoff_s: float = 0.5
    """Wait before the first restart; it doubles with each failed attempt, up to `max_backoff_s`."""
    max_backoff_s: float = 30.0
    start_timeout_s: float = 120.0
    """Longest a worker may take to load the model and generate its first token."""

    def delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self.backoff_s, self.max_backoff_s)


class Supervisor:
    """Keeps `slots` model workers running (see the module docstring). Thread-safe."""

    def __init__(self, config: WorkerConfig, *, slots: int, policy: RestartPolicy | None = None) -> None:
        if slots < 1:
            raise ValueError("at least one worker slot is needed")
        self._config = config
        self._slots = slots
        self._policy = policy or RestartPolicy()
        self._cond = threading.Condition()
        self._slot_of: dict[WorkerProcess, int] = {}
        self._live: list[WorkerProcess] = []  # ready and not exited, busy or idle
        self._idle: deque[WorkerProcess] = deque()
        self._restarting: dict[int, str] = {}  # slot -> what is being done about it, for health()
        self._failed: str | None = None
        self._closing = threading.Event()
        self._restarts = 0
        self._next_worker = count(1)
        self._round_robin = count()
        self._threads: list[threading.Thread] = []
        self.runtime: RuntimeReport | None = None
        """The first worker's runtime report (which build of llama-cpp-python runs, and whether it fits)."""
        self.ready_info: Ready | None = None

    # --- start and stop -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts every worker and waits until each is warmed up; raises ModelRuntimeFailed if one is not."""
        workers: list[WorkerProcess] = []
        try:
            workers.extend(self._spawn(slot) for slot in range(self._slots))  # they load side by side
            for worker in workers:
                self.ready_info = worker.wait_ready(self._policy.start_timeout_s)
            with self._cond:
                # One that died after it was ready is not serving yet, so nobody else would notice.
                dead = next((worker for worker in workers if not worker.alive), None)
                if dead is None:
                    self._live.extend(workers)
                    self._idle.extend(workers)
                    self._cond.notify_all()
            if dead is not None:
                raise ModelRuntimeFailed(dead.exit_reason or "the model runtime stopped")
        except ModelRuntimeFailed:
            self.close()
            raise

    def close(self) -> None:
        """Stops every worker and any restart in progress."""
        self._closing.set()
        with self._cond:
            workers = list(self._slot_of)
            self._cond.notify_all()
        for worker in workers:
            worker.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self, slot: int) -> WorkerProcess:
        try:
            worker = WorkerProcess(
                self._config,
                name=f"model worker {next(self._next_worker)}",
                on_exit=self._exited,
                on_idle=self.release,
                on_hello=self._hello,
            )
        except OSError as exc:
            raise ModelRuntimeFailed(f"cannot start a model worker process: {exc}") from exc
        with self._cond:
            self._slot_of[worker] = slot
        return worker

    # --- handing workers out --------------------------------------------------------------------------------

    def acquire(self, deadline: float, cancelled: threading.Event) -> WorkerProcess | None:
        """An idle worker, waiting for one until `deadline` (RequestTimeout); None if `cancelled` is set.

        Raises ModelUnavailable, naming the crash, when no worker is up (all are restarting), rather than
        keeping the request waiting for a restart that may never succeed.
        """
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.popleft()
                self._raise_if_down()
                if cancelled.is_set():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RequestTimeout("Timed out waiting for a free model instance.")
                self._cond.wait(min(remaining, _WAIT_POLL_S))

    def release(self, worker: WorkerProcess) -> None:
        """Gives a worker back after its completion (called on its reader thread)."""
        with self._cond:
            if worker in self._live and worker.alive:
                self._idle.append(worker)
                self._cond.notify()

    def any_worker(self) -> WorkerProcess:
        """A live worker, busy or not, for requests that run beside a completion (tokenizing a prompt)."""
        with self._cond:
            self._raise_if_down()
            return self._live[next(self._round_robin) % len(self._live)]

    def _raise_if_down(self) -> None:
        if self._failed is not None:
            raise ModelUnavailable(f"The model runtime is down: {self._failed}.")
        if not self._live:
            state = next(iter(self._restarting.values()), "the model runtime is not running")
            raise ModelUnavailable(f"{state[0].upper()}{state[1:]}. Retry in a few seconds.")

    # --- state ----------------------------------------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        with self._cond:
            return [worker.pid for worker in self._live]

    def health(self) -> BackendHealth:
        with self._cond:
            if self._failed is not None:
                return BackendHealth(False, self._failed, failed=True, restarts=self._restarts)
            reason = next(iter(self._restarting.values()), None)
            return BackendHealth(bool(self._live), reason, restarts=self._restarts)

    # --- crashes and restarts -------------------------------------------------------------------------------

    def _hello(self, worker: WorkerProcess) -> None:
        report = worker.runtime
        if report is None or (self.runtime is not None and report == self.runtime):
            return
        self.runtime = report
        log.log(logging.INFO if report.fits is not False else logging.WARNING, "%s", report.line())

    def _exited(self, worker: WorkerProcess) -> None:
        """A worker's process ended (on its reader thread). A serving one is restarted; others are reported
        by whoever waits for them to start."""
        with self._cond:
            slot = self._slot_of.pop(worker, None)
            serving = worker in self._live
            if serving:
                self._live.remove(worker)
                if worker in self._idle:
                    self._idle.remove(worker)
            self._cond.notify_all()
            if not serving or slot is None or self._closing.is_set():
                return
            crash = worker.crash or "the model runtime stopped"
            self._restarting[slot] = f"{crash}; restarting it"
            thread = threading.Thread(
                target=self._restart,
                args=(slot, crash, worker.exit_reason or crash),
                name=f"bme-restart-{slot}",
                daemon=True,
            )
            self._threads.append(thread)
        thread.start()

    def _restart(self, slot: int, crash: str, reason: str) -> None:
        """Restarts slot `slot` after `crash` (`reason`: the same with advice), with back-off, or gives up."""
        attempts = self._policy.attempts
        for attempt in range(1, attempts + 1):
            with self._cond:
                self._restarting[slot] = f"{crash}; restarting it (attempt {attempt} of {attempts})"
            if self._closing.wait(self._policy.delay(attempt)):
                return
            try:
                worker = self._start_one(slot)
            except _StartFailed as failed:
                if self._closing.is_set():
                    return
                crash, reason = failed.crash, failed.reason
                log.error("restart %d of %d of the model runtime failed: %s", attempt, attempts, reason)
                continue
            if worker is not None:
                log.warning("%s (pid %d) is serving again after a restart", worker.name, worker.pid)
            return
        with self._cond:
            self._restarting.pop(slot, None)
            self._failed = (
                f"{reason} (gave up after {attempts} failed restart{'s' if attempts != 1 else ''})"
                if attempts
                else f"{reason} (restarts are off: worker_restart_attempts is 0)"
            )
            self._cond.notify_all()
        log.critical("the node cannot serve: %s", self._failed)

    def _start_one(self, slot: int) -> WorkerProcess | None:
        """A new worker for `slot`, warmed up and serving; None if the supervisor closed meanwhile."""
        try:
            worker = self._spawn(slot)
        except ModelRuntimeFailed as exc:
            raise _StartFailed(str(exc), str(exc)) from exc
        try:
            worker.wait_ready(self._policy.start_timeout_s)
        except ModelRuntimeFailed as exc:
            raise _StartFailed(worker.crash or str(exc), str(exc)) from exc
        with self._cond:
            closing = self._closing.is_set()
            serving = not closing and worker.alive  # it may have died just after it was ready
            if serving:
                self._live.append(worker)
                self._idle.append(worker)
                self._restarts += 1
                self._restarting.pop(slot, None)
                self._cond.notify_all()
        if closing:
            worker.close()  # close() may have listed the workers before this one existed
            return None
        if not serving:
            raise _StartFailed(worker.crash or "the model runtime stopped", worker.exit_reason or "")
        return worker


class _StartFailed(Exception):
    """A restarted worker did not come up: `crash` says how (for clients), `reason` adds the advice."""

    def __init__(self, crash: str, reason: str) -> None:
        super().__init__(reason)
        self.crash = crash
        self.reason = reason or crash
