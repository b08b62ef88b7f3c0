"""Child processes of a local stack: started with a log file, watched, described when they end.

A local protocol is several processes (anvil, operator nodes, relayers). When one of them dies, whatever waits
on it (a long-poll, a health check, a test) would otherwise wait out its own timeout and then report a symptom
("connection refused") instead of the cause. `Watcher` polls the children a few times a second; the first
unexpected exit is reported at once as a `Death`: which process, how it ended (exit status or signal name) and
the end of its log. A process stopped on purpose (`Process.stop`) is not a death.

Each child runs in its own session: a Ctrl-C in the terminal reaches only the parent, which then stops the
children in order, and stopping a child also ends whatever it started (a node's model worker).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bme.errors import BmeError

#: Lines of a dead process's log shown with its death.
TAIL_LINES = 20
#: How often the watcher looks at the children.
POLL_S = 0.1


def exit_description(returncode: int) -> str:
    """How a process ended, for people: 'exited with status 1' or 'killed by SIGILL'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with status {returncode}"


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of the log at `path` (none if it cannot be read)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


@dataclass
class Process:
    """A child process with its log file; `url` is where it serves (empty if it serves nothing)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str
    #: Set before any stop on purpose, so that the watcher does not report the exit as a death.
    stopping: bool = field(default=False, compare=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Sends `sig` and waits (SIGKILL after `timeout`); then ends anything the process left behind in
        its session. Returns the exit code."""
        self.stopping = True
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # the session's leftovers (the leader is gone)
        return self.popen.returncode


def spawn(name: str, argv: list[str], *, log: Path, env: dict[str, str], cwd: Path, url: str = "") -> Process:
    """Starts `argv` in a new session, its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        popen = subprocess.Popen(
            argv,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    return Process(name, popen, log, url)


@dataclass(frozen=True)
class Death:
    """A child that exited while nobody was stopping it."""

    name: str
    pid: int
    returncode: int
    log: Path
    tail: tuple[str, ...]

    @classmethod
    def of(cls, proc: Process) -> Death:
        """The death of `proc`, which has exited: how it ended and the end of its log."""
        code = proc.popen.poll()
        assert code is not None, f"{proc.name} is still running"
        return cls(proc.name, proc.pid, code, proc.log, tuple(log_tail(proc.log)))

    @property
    def summary(self) -> str:
        """One line: which process and how it ended."""
        return f"{self.name} (pid {self.pid}) {exit_description(self.returncode)}"

    def report(self) -> str:
        """The summary, then the end of the process's log."""
        if not self.tail:
            return f"{self.summary}; its log {self.log} is empty"
        lines = [f"{self.summary}; the last lines of {self.log}:"]
        lines.extend(f"  | {line}" for line in self.tail)
        return "\n".join(lines)


class ProcessDied(BmeError):
    """A child of the stack died; the message is the one-line summary, `death` has its log's tail."""

    def __init__(self, death: Death) -> None:
        super().__init__(f"{death.summary} (log: {death.log})")
        self.death = death


class Watcher:
    """A daemon thread that polls the children and calls `on_death` once, for the first unexpected exit."""

    def __init__(self, children: Callable[[], list[Process]], on_death: Callable[[Death], None]) -> None:
        self._children = children
        self._on_death = on_death
        self._stop = threading.Event()
        self.death: Death | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="stack-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops watching (before the children are stopped on purpose)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            for proc in self._children():
                code = proc.popen.poll()
                if code is None or proc.stopping or self._stop.is_set():
                    continue
                self.notice(proc)
                return

    def notice(self, proc: Process) -> Death:
        """Records the exit of `proc` as the death and reports it, unless a death was already recorded (by
        this thread or one that saw the exit first, e.g. while waiting for `proc` to answer); returns the
        death recorded. Every death is reported exactly once, whichever thread notices it."""
        with self._lock:
            first = self.death is None
            if first:
                self.death = Death.of(proc)
        death = self.death
        assert death is not None
        if first:
            self._on_death(death)
        return death
