"""The README's "Use a local protocol by hand", run line by line as a user would type it.

The lines are read from the README itself, so the README cannot drift from what works: `bme stack up` in
the background until its `ready` line, then each line of the second terminal's block through a shell (the
installed `bme` on PATH, a temporary HOME so that nothing touches the real wallets or stack directory),
then SIGINT to `bme stack up`, which must exit 0 and leave no process behind. The stack's ports are moved
off the defaults (this machine may run other stacks) through `BME_STACK_*_PORT`, and the `export` lines it
prints are applied, as its screen tells a user to, except `BME_DEPLOYMENT`: the commands must find the
stack's deployment on their own.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bme.chain.artifacts import project_root
from bme.chain.devnet import free_port

SECTION = "## Use a local protocol by hand"
JOB_ID = re.compile(r"0x[0-9a-f]{64}")


def readme_blocks() -> list[list[str]]:
    """The section's shell blocks, as lists of non-empty lines."""
    text = (project_root() / "README.md").read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


class Background:
    """`bme stack up`, its output collected on a thread."""

    def __init__(self, line: str, env: dict[str, str], cwd: Path) -> None:
        self.popen = subprocess.Popen(
            shlex.split(line, comments=True),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in self.lines):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {prefix!r} line from bme stack up:\n" + "\n".join(self.lines))
            time.sleep(0.1)

    def descendants(self) -> set[int]:
        """Every process below `bme stack up` now (from /proc's children lists)."""
        found: set[int] = set()
        todo = [self.popen.pid]
        while todo:
            pid = todo.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for child in map(int, children):
                    if child not in found:
                        found.add(child)
                        todo.append(child)
        return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    started = time.monotonic()
    stack_block, commands = readme_blocks()
    assert [shlex.split(x, comments=True) for x in stack_block] == [["bme", "stack", "up"]]
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BME_")},
        "HOME": str(home),
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "COLUMNS": "200",
        "BME_STACK_RPC_PORT": str(free_port()),
        "BME_STACK_RELAYER_PORT": str(free_port()),
        "BME_STACK_NODE_PORT": str(free_port()),
    }
    stack = Background(stack_block[0], env, work)
    timings: list[tuple[str, float]] = []
    try:
        stack.wait_for("ready", 180)
        timings.append(("bme stack up", time.monotonic() - started))
        for line in stack.lines:
            words = shlex.split(line)
            if words[:1] == ["export"] and not words[1].startswith("BME_DEPLOYMENT="):
                name, _, value = words[1].partition("=")
                env[name] = value
        assert "BME_RPC_URL" in env and "BME_RELAYER_URL" in env
        job = _run_commands(commands, env, work, timings)
        assert job is not None
        processes = stack.descendants()
        assert len(processes) >= 3  # anvil, the node, the relayer
    finally:
        if stack.popen.poll() is None:
            stack.popen.send_signal(signal.SIGINT)
        code = stack.popen.wait(60)
    output = "\n".join(stack.lines)
    assert code == 0, output
    assert "stopped" in output
    left = [pid for pid in processes if alive(pid)]
    assert not left, f"processes left behind: {left}"
    assert not (home / ".bme" / "stack" / "deployment.json").exists()
    total = time.monotonic() - started
    print(f"\nthe README's commands, {total:.1f} s in all:")
    for line, seconds in timings:
        print(f"  {seconds:5.1f} s  {line}")


def _run_commands(
    commands: list[str], env: dict[str, str], cwd: Path, timings: list[tuple[str, float]]
) -> str | None:
    """Runs the second terminal's lines; returns the id of the job that the node refused."""
    refused: str | None = None
    for line in commands:
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
            continue
        if words[0].startswith("JOB="):
            assert refused is not None, "JOB= before the refused ask"
            env["JOB"] = refused
            continue
        began = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", line], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
        )
        timings.append((line.split("#")[0].strip(), time.monotonic() - began))
        out = done.stdout + done.stderr
        expect_failure = "# fails" in line
        assert done.returncode == (1 if expect_failure else 0), f"{line}\n{out}"
        _check(words, out)
        if expect_failure:
            ids = JOB_ID.findall(out)
            assert ids, out
            refused = ids[0]
            assert "answered error 400" in out, out
    return refused


def _check(words: list[str], out: str) -> None:
    """What each command must have said."""
    command = " ".join(words[:3])
    if words[1] == "ask" and "--max-tokens" in words and words[words.index("--max-tokens") + 1] == "32":
        assert "verified" in out, out
    elif command.startswith("bme jobs"):
        assert out.lower().count("settled") >= 3, out
    elif command.startswith("bme refund"):
        assert "expired" in out, out
    elif command.startswith("bme operator claim"):
        assert "claimed" in out, out
    elif command.startswith("bme operator redeem"):
        assert "redeemed" in out, out
    elif command.startswith("bme devnet fund"):
        assert "received" in out, out
