"""Words for how a model runtime process ended: the signal that killed it, or its exit code, and what to do.

A worker that dies leaves only a return code behind (negative: the signal that killed it). The node turns
that number into one line an operator can act on, because "Server disconnected" is what a client saw when
the runtime died in silence.
"""

from __future__ import annotations

import signal

#: What each crash signal usually means for llama-cpp-python, and what to do about it.
_HINTS: dict[int, str] = {
    signal.SIGILL: (
        "this build of llama-cpp-python uses instructions this CPU lacks; rebuild it with `make clean setup`"
    ),
    signal.SIGSEGV: "a bug in the model runtime or a damaged model file",
    signal.SIGBUS: "the model file changed or vanished while it was mapped into memory",
    signal.SIGFPE: "an arithmetic fault in the model runtime",
    signal.SIGABRT: "the model runtime aborted (see the lines it wrote to the log just before)",
    signal.SIGKILL: "killed from outside (by the kernel's out-of-memory killer or an operator)",
}


def signal_name(returncode: int) -> str | None:
    """`SIGILL` for a return code of -4, and so on; None when the process was not killed by a signal."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(returncode: int) -> str:
    """'crashed with SIGILL (illegal instruction)', 'exited with code 3', ...: how a process ended."""
    name = signal_name(returncode)
    if name is None:
        return f"exited with code {returncode}"
    meaning = signal.strsignal(-returncode) if name.startswith("SIG") else None
    return f"crashed with {name} ({meaning.lower()})" if meaning else f"crashed with {name}"


def exit_hint(returncode: int) -> str | None:
    """What a return code usually means and what to do about it, when the node knows."""
    return _HINTS.get(-returncode) if returncode < 0 else None
