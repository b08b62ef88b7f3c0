"""A model worker process: `python -m bme.node.worker FD`, started and supervised by `bme.node.supervisor`.

It talks to the node over the socket inherited as file descriptor FD (`bme.node.wire` messages): it receives
its `WorkerConfig`, imports the runtime and says `Hello` (with the runtime's build report), loads the model,
generates one token (the warm-up) and says `Ready`; then it answers `Prepare` requests on its main thread
while a generation thread runs `Generate` requests one at a time, so that the node can tokenize new
requests (and refuse the ones that do not fit) while a completion runs.

It exits when the node closes the socket, which also happens when the node dies, so no worker outlives its
node. It ignores SIGINT: a Ctrl-C in the node's terminal reaches the whole process group, and the node, not
the worker, decides when the model stops. Python's faulthandler writes the Python stack of a crash to the
worker's stderr, which the node logs; core dumps are off, since a crashing runtime restarted five times
would leave five images of the model's memory behind.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import queue
import resource
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from bme.node.errors import NodeError
from bme.node.faults import FAULT_ENV, inject, parse_faults
from bme.node.wire import (
    CANCELLED,
    Cancel,
    Delta,
    Done,
    Failure,
    FromWorker,
    Generate,
    Hello,
    Prepare,
    Prepared,
    Ready,
    Stage,
    StartFailed,
    WorkerConfig,
)

if TYPE_CHECKING:
    from bme.node.engine import Engine


class _Channel:
    """The worker's end of the socket; sends are locked, as both of the worker's threads answer."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: FromWorker) -> None:
        """Sends, or drops the message if the node has gone (the main thread then sees end of file and
        stops the worker)."""
        with self._lock, contextlib.suppress(OSError):
            self.conn.send(message)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    channel = _Channel(Connection(int(argv[1])))
    try:
        config = channel.conn.recv()
    except (EOFError, OSError):
        return 1  # the node went away before it said what to load
    assert isinstance(config, WorkerConfig)
    stage = "starting"
    try:
        faults = parse_faults(os.environ.get(FAULT_ENV, ""))
        stage = "loading the model runtime"
        from bme.node.engine import Engine, load_llama
        from bme.node.runtime import runtime_report

        channel.send(Hello(os.getpid(), runtime_report().as_dict()))
        stage = "loading the model"
        channel.send(Stage(stage))
        inject("load", faults)
        started = time.perf_counter()
        llama = load_llama(
            Path(config.model_path),
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            n_batch=config.n_batch,
            seed=config.seed,
        )
        engine = Engine(llama, default_seed=config.seed)
        load_s = time.perf_counter() - started
        stage = "warming up"
        channel.send(Stage(stage))
        inject("warmup", faults)
        started = time.perf_counter()
        engine.warm_up()
        warmup_s = time.perf_counter() - started
    except Exception as exc:  # reported to the node, which says why it cannot start
        message = str(exc) or type(exc).__name__
        channel.send(StartFailed(stage, " ".join(message.split())))
        return 1
    channel.send(Ready(engine.n_ctx, load_s, warmup_s))
    _serve(channel, engine)
    return 0


def _serve(channel: _Channel, engine: Engine) -> None:
    """Answers requests until the node closes the socket."""
    jobs: queue.SimpleQueue[Generate | None] = queue.SimpleQueue()
    cancels: dict[int, threading.Event] = {}
    lock = threading.Lock()

    def generation_thread() -> None:
        while (job := jobs.get()) is not None:
            with lock:
                cancel = cancels.setdefault(job.id, threading.Event())
            try:
                _generate(channel, engine, job, cancel)
            finally:
                with lock:
                    cancels.pop(job.id, None)

    thread = threading.Thread(target=generation_thread, name="bme-generate", daemon=True)
    thread.start()
    try:
        while True:
            try:
                message = channel.conn.recv()
            except (EOFError, OSError):
                return  # the node closed the socket, or died
            if isinstance(message, Prepare):
                channel.send(_prepare(engine, message))
            elif isinstance(message, Generate):
                with lock:
                    cancels.setdefault(message.id, threading.Event())
                jobs.put(message)
            elif isinstance(message, Cancel):
                with lock:
                    event = cancels.get(message.id)
                if event is not None:
                    event.set()
    finally:
        with lock:
            for event in cancels.values():
                event.set()
        jobs.put(None)
        thread.join(timeout=5)


def _prepare(engine: Engine, request: Prepare) -> Prepared | Failure:
    try:
        prompt = engine.render(request.params)
    except NodeError as exc:
        return Failure.of(request.id, exc)
    except Exception as exc:  # answered with a 500; the worker carries on
        return Failure(request.id, NodeError.__name__, f"The model could not read the prompt: {exc}")
    return Prepared(request.id, tuple(prompt.token_ids), prompt.stop)


def _generate(channel: _Channel, engine: Engine, job: Generate, cancel: threading.Event) -> None:
    deadline = time.monotonic() + job.timeout_s
    emit = (lambda text: channel.send(Delta(job.id, text))) if job.incremental else None
    try:
        result = engine.generate(
            list(job.prompt_ids),
            job.params,
            max_tokens=job.max_tokens,
            emit=emit,
            cancelled=cancel.is_set,
            deadline=deadline,
        )
    except NodeError as exc:
        channel.send(Failure.of(job.id, exc))
        return
    except Exception as exc:  # a runtime error the node should answer with a 500, not a dead worker
        channel.send(Failure(job.id, NodeError.__name__, f"The model failed: {exc}"))
        return
    if result is None:
        channel.send(Failure(job.id, CANCELLED, "cancelled"))
        return
    finish, usage, rest = result
    channel.send(Done(job.id, finish, usage, rest))


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: the model runtime's objects must not be finalized while a generation thread
    # may still be winding down, and the kernel frees the model faster than Python would.
    os._exit(code)
