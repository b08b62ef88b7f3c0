"""The node's handle on one model worker process: starting it, talking to it, and noticing how it died.

Why a subprocess (`python -P -m bme.node.worker`) with an inherited socket, rather than `multiprocessing`
with the spawn or forkserver context: both of those re-import the parent's `__main__` in the child, which
for `bme` is the whole command line (web3, the relayer, the scenario runner) and under pytest is pytest with
its plugins: seconds of start-up and memory per worker for nothing. A plain subprocess imports only the
worker module, takes its environment as it is at each start (how the fault-injection switch reaches
restarted workers), cannot inherit the server's threads or locks (no fork), and its return code says how it
died: minus the signal number, from which the node names the crash (SIGILL: a runtime built for another
CPU). The socket carries `multiprocessing.connection` framing (pickled `bme.node.wire` messages); the
worker's stdout and stderr (llama.cpp's messages, the Python stack that faulthandler writes on a crash) are
read into the node's log.

When the socket reaches end of file the worker is gone: every call and generation still waiting on it fails
at once with `ModelUnavailable`, naming the crash, and the owner's `on_exit` runs (the supervisor restarts
the worker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import site
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from multiprocessing.connection import Connection
from pathlib import Path

import bme
from bme.node.backends import Finished, StreamEvent, TextDelta
from bme.node.errors import ModelRuntimeFailed, ModelUnavailable, NodeError
from bme.node.exits import describe_exit, exit_hint
from bme.node.runtime import RuntimeReport
from bme.node.wire import (
    CANCELLED,
    Cancel,
    Delta,
    Done,
    Failure,
    Generate,
    Hello,
    Prepare,
    Prepared,
    Ready,
    Stage,
    StartFailed,
    ToWorker,
    WorkerConfig,
)

log = logging.getLogger(__name__)

Sink = Callable[[StreamEvent | NodeError], None]

_EXIT_WAIT_S = 5.0
"""How long a worker whose socket closed may take to exit before it is killed."""


class WorkerProcess:
    """One running model worker. Thread-safe; its reader threads call `on_idle` and `on_exit`."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        name: str,
        on_exit: Callable[[WorkerProcess], None],
        on_idle: Callable[[WorkerProcess], None],
        on_hello: Callable[[WorkerProcess], None] | None = None,
    ) -> None:
        self.name = name
        self._on_exit = on_exit
        self._on_idle = on_idle
        self._on_hello = on_hello
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._calls: dict[int, Future[Prepared]] = {}
        self._generations: dict[int, Sink] = {}
        self._ready = threading.Event()
        self._stage = "starting"
        self._start_failure: StartFailed | None = None
        self._kill_reason: str | None = None
        self._closing = False
        self.runtime: RuntimeReport | None = None
        self.ready_info: Ready | None = None
        self.returncode: int | None = None
        self.exit_reason: str | None = None
        """One line for the operator: what happened to the runtime, at which stage, and what to do."""
        self.crash: str | None = None
        """The same without advice, for clients: e.g. "the model runtime crashed with SIGILL (...)"."""

        ours, theirs = socket.socketpair()
        self._socket = ours
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-P", "-m", "bme.node.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_worker_environment(),
            )
        self._conn = Connection(os.dup(ours.fileno()))
        self.pid = self._process.pid
        self._send(config)
        self._reader = threading.Thread(target=self._read, name=f"bme-{name}-reader", daemon=True)
        self._reader.start()
        self._output = threading.Thread(target=self._log_output, name=f"bme-{name}-output", daemon=True)
        self._output.start()

    # --- state ----------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.exit_reason is None

    @property
    def stage(self) -> str:
        return self._stage

    def wait_ready(self, timeout_s: float) -> Ready:
        """Blocks until the model is loaded and warmed up; raises ModelRuntimeFailed, with why, if not."""
        if not self._ready.wait(timeout_s):
            self.kill(f"it did not load and warm up the model within {timeout_s:g}s")
            self._reader.join(timeout=_EXIT_WAIT_S * 2)
        if self.ready_info is None or not self.alive:
            raise ModelRuntimeFailed(self.exit_reason or f"the {self.name} did not start")
        return self.ready_info

    # --- requests -------------------------------------------------------------------------------------------

    def call(self, request: Prepare) -> Future[Prepared]:
        """Sends a request answered by one message; the future fails with a NodeError if it fails."""
        future: Future[Prepared] = Future()
        with self._lock:
            self._refuse_if_gone()
            self._calls[request.id] = future
        self._send_or_forget(request)
        return future

    def generate(self, request: Generate, sink: Sink) -> None:
        """Starts a completion whose events (`TextDelta`s, then `Finished` or a NodeError) go to `sink`,
        on the reader thread. When it ends, normally or not, the worker is handed to `on_idle`."""
        with self._lock:
            self._refuse_if_gone()
            self._generations[request.id] = sink
        self._send_or_forget(request)

    def cancel(self, request_id: int) -> None:
        """Asks the worker to stop a completion nobody waits for any more (it ends at its next token)."""
        with self._lock:
            running = request_id in self._generations
        if running:
            self._send_or_forget(Cancel(request_id))

    def _refuse_if_gone(self) -> None:
        if self.crash is not None:
            raise ModelUnavailable(client_message(self.crash))

    def _send(self, message: WorkerConfig | ToWorker) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _send_or_forget(self, message: ToWorker) -> None:
        """A send to a worker that just died fails; its reader thread then fails the request, saying why."""
        with contextlib.suppress(OSError):
            self._send(message)

    # --- stopping -------------------------------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        """Kills the worker (it is hung, or must go); its requests fail and `on_exit` runs as for a crash."""
        with self._lock:
            if self._kill_reason is None:
                self._kill_reason = reason
        if self._process.poll() is None:
            self._process.kill()

    def close(self) -> None:
        """Stops the worker: it sees end of file on its socket and exits; killed if it takes too long."""
        with self._lock:
            self._closing = True
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # also wakes our reader thread
        try:
            self._process.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._reader.join(timeout=_EXIT_WAIT_S * 2)
        self._output.join(timeout=_EXIT_WAIT_S)

    # --- the reader threads ---------------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            while True:
                self._dispatch(self._conn.recv())
        except (EOFError, OSError):
            pass
        except Exception:  # a message we cannot read: the worker cannot be trusted any more
            log.exception("%s (pid %d) sent something unreadable; stopping it", self.name, self.pid)
            self.kill("it sent an unreadable message")
        finally:
            self._exited()

    def _dispatch(self, message: object) -> None:
        if isinstance(message, Delta):
            sink = self._generations.get(message.id)
            if sink is not None:
                sink(TextDelta(message.text))
        elif isinstance(message, Done | Failure):
            self._finish(message)
        elif isinstance(message, Prepared):
            with self._lock:
                future = self._calls.pop(message.id, None)
            if future is not None:
                _settle(future, message)
        elif isinstance(message, Stage):
            self._stage = message.name
        elif isinstance(message, Hello):
            self.runtime = RuntimeReport.from_dict(message.runtime)
            if self._on_hello is not None:
                self._on_hello(self)
        elif isinstance(message, Ready):
            self.ready_info = message
            self._stage = "serving requests"
            self._ready.set()
        elif isinstance(message, StartFailed):
            self._start_failure = message
            self._stage = message.stage

    def _finish(self, message: Done | Failure) -> None:
        with self._lock:
            future = self._calls.pop(message.id, None)
            sink = None if future is not None else self._generations.pop(message.id, None)
        if future is not None:  # a failed call
            assert isinstance(message, Failure)
            _settle(future, message.error())
            return
        if sink is None:
            return
        if isinstance(message, Done):
            if message.text:
                sink(TextDelta(message.text))
            sink(Finished(message.finish_reason, message.usage))
        elif message.kind != CANCELLED:
            sink(message.error())
        self._on_idle(self)

    def _exited(self) -> None:
        """The socket is closed: collect the exit status, fail what was waiting, tell the owner."""
        try:
            returncode = self._process.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # it closed the socket but lives on: not a worker we can use
            self._process.kill()
            returncode = self._process.wait()
        self._conn.close()
        self._socket.close()
        with self._lock:
            self.returncode = returncode
            self.crash = self._describe(returncode)
            hint = exit_hint(returncode) if self._kill_reason is None else None
            self.exit_reason = f"{self.crash}: {hint}" if hint else self.crash
            calls, self._calls = self._calls, {}
            generations, self._generations = self._generations, {}
            closing = self._closing
        self._ready.set()
        if not closing:
            level = logging.ERROR if self.ready_info is not None else logging.DEBUG
            log.log(level, "%s (pid %d): %s", self.name, self.pid, self.exit_reason)
        # The owner first (so that the node is not ready by the time a client hears of the crash), then
        # everything that was waiting on this worker.
        self._on_exit(self)
        message = client_message(self.crash)
        for future in calls.values():
            _settle(future, ModelUnavailable(message))
        for sink in generations.values():
            sink(ModelUnavailable(message))

    def _describe(self, returncode: int) -> str:
        """One line: what happened to the runtime, and at which stage."""
        if self._kill_reason is not None:
            return f"the node stopped the model runtime while {self._stage}: {self._kill_reason}"
        if self._start_failure is not None:
            failure = self._start_failure
            return f"the model runtime failed while {failure.stage}: {failure.message}"
        if self._closing and returncode in (0, -9, -15):
            return "the model runtime was stopped"
        return f"the model runtime {describe_exit(returncode)} while {self._stage}"

    def _log_output(self) -> None:
        """What the worker writes (llama.cpp's messages, a crash's Python stack) goes to the node's log."""
        stream = self._process.stdout
        assert stream is not None
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    log.info("%s (pid %d): %s", self.name, self.pid, line)


def _worker_environment() -> dict[str, str]:
    """This process's environment as it is now (so a changed fault-injection switch reaches restarted
    workers). When `bme` comes from a source tree rather than site-packages, that tree goes on the
    worker's path, so the worker runs the same code as the node."""
    env = dict(os.environ)
    package_root = Path(bme.__file__).resolve().parent.parent
    installed = {Path(p).resolve() for p in (*site.getsitepackages(), site.getusersitepackages())}
    if package_root not in installed:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(package_root), env.get("PYTHONPATH"))))
    return env


def _settle(future: Future[Prepared], outcome: Prepared | NodeError) -> None:
    """Resolves a call's future, unless its caller gave up on it (a cancelled future cannot be set)."""
    with contextlib.suppress(InvalidStateError):
        if isinstance(outcome, Prepared):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)


def client_message(crash: str) -> str:
    """What a client is told when the runtime under its request died: the crash, named, and what next."""
    return f"{crash[0].upper()}{crash[1:]}; the node is restarting it. Retry in a few seconds."
