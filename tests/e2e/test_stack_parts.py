"""The local stack's parts that need no chain and no model: how a death is described, the stack's wallets
never overwriting a keystore, the checks `bme stack up` makes before it starts anything."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from bme.children import Death, Process, ProcessDied, Watcher, exit_description, log_tail, spawn
from bme.cli.stack import Ports, _directory_lock
from bme.errors import ConfigError
from bme.stack_wallets import import_wallet
from bme.wallet.keystore import create_keystore, keystore_address

pytestmark = pytest.mark.pure

PASSWORD = "pw"


def test_an_exit_is_described_by_its_status_or_its_signal_name() -> None:
    assert exit_description(1) == "exited with status 1"
    assert exit_description(0) == "exited with status 0"
    assert exit_description(-signal.SIGILL) == "killed by SIGILL"
    assert exit_description(-signal.SIGKILL) == "killed by SIGKILL"


def test_a_death_is_one_line_and_its_report_ends_with_the_log(tmp_path: Path) -> None:
    log = tmp_path / "node-0.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    death = Death("node-0", 4242, -signal.SIGILL, log, tuple(log_tail(log)))
    error = ProcessDied(death)
    assert str(error) == f"node-0 (pid 4242) killed by SIGILL (log: {log})"
    assert "\n" not in str(error)
    report = death.report().splitlines()
    assert report[0].startswith("node-0 (pid 4242) killed by SIGILL")
    assert report[1:] == [f"  | line {i}" for i in range(30, 50)]  # the last 20 lines


def test_the_watcher_reports_an_unexpected_exit_but_not_a_stop(tmp_path: Path) -> None:
    deaths: list[Death] = []
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    stopped = spawn("stopped", sleeper, log=tmp_path / "a.log", env={}, cwd=tmp_path)
    crashing = spawn(
        "crashing",
        [sys.executable, "-c", "import os, signal, sys; print('loading'); sys.stdout.flush(); os.abort()"],
        log=tmp_path / "b.log",
        env={},
        cwd=tmp_path,
    )
    children: list[Process] = [stopped, crashing]
    watcher = Watcher(lambda: children, deaths.append)
    stopped.stop()
    watcher.start()
    crashing.popen.wait(10)
    watcher._thread.join(5)
    assert [d.name for d in deaths] == ["crashing"]
    assert deaths[0].summary == f"crashing (pid {crashing.pid}) killed by SIGABRT"
    assert deaths[0].tail == ("loading",)
    watcher.stop()


def test_stopping_a_child_ends_what_it_started(tmp_path: Path) -> None:
    parent = spawn(
        "parent",
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print(p.pid, flush=True); time.sleep(60)",
        ],
        log=tmp_path / "p.log",
        env={},
        cwd=tmp_path,
    )
    for _ in range(200):
        if (tmp_path / "p.log").read_text().strip():
            break
        time.sleep(0.05)
    grandchild = int((tmp_path / "p.log").read_text().split()[0])
    parent.stop()
    assert _gone(grandchild, 5.0), f"pid {grandchild} outlived its parent's stop"


def _gone(pid: int, timeout: float) -> bool:
    """True once `pid` is no process (or a zombie, which holds nothing but its exit status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_the_stacks_wallets_never_overwrite_a_keystore(tmp_path: Path) -> None:
    ours, other = Account.create(), Account.create()
    # Nothing there: the wallet is written under its name.
    first = import_wallet("alice", "user", ours, tmp_path, PASSWORD)
    assert (first.name, first.note) == ("alice", "")
    assert keystore_address(tmp_path / "alice.json") == ours.address
    # The same account there already: kept as it is, with its own password.
    again = import_wallet("alice", "user", ours, tmp_path, "another password")
    assert again.name == "alice" and "kept" in again.note
    # Another account holds the name: the stack's account takes a suffixed one, the keystore is untouched.
    create_keystore(tmp_path / "bob.json", PASSWORD, bytes(other.key))
    moved = import_wallet("bob", "user", ours, tmp_path, PASSWORD)
    assert moved.name == "bob-devnet" and "holds another account" in moved.note
    assert keystore_address(tmp_path / "bob.json") == other.address
    assert keystore_address(tmp_path / "bob-devnet.json") == ours.address


def test_a_taken_port_is_refused_naming_the_option_that_moves_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {taken} for the relayer is taken.*--relayer-port"):
            Ports(_free(), taken, _free()).check()
    with pytest.raises(ConfigError, match="the ports must differ"):
        Ports(8545, 8545, 8090).check()


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_one_stack_per_directory(tmp_path: Path) -> None:
    busy = pytest.raises(ConfigError, match="another `bme stack up`")
    with _directory_lock(tmp_path), busy, _directory_lock(tmp_path):
        pass
    with _directory_lock(tmp_path):  # released
        pass
