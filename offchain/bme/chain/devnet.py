"""A local anvil devnet as a child process: started on a free port, stopped on exit."""

from __future__ import annotations

import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from web3 import Web3

from bme.chain.artifacts import project_root
from bme.errors import ChainError

#: anvil's default accounts come from this mnemonic; their keys are public knowledge: devnets only.
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def devnet_keys(count: int) -> list[str]:
    """The private keys of the devnet's first `count` accounts."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex()
        for i in range(count)
    ]


def find_anvil() -> str | None:
    """anvil on PATH, beside this Python, or in the project's npm packages."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")
    system = "darwin" if sys.platform == "darwin" else "linux"
    candidates = [
        Path(sys.executable).parent / "anvil",
        project_root() / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil",
    ]
    return shutil.which("anvil") or next((str(c) for c in candidates if c.exists()), None)


class Anvil:
    """An anvil process; use as a context manager."""

    def __init__(
        self, port: int | None = None, chain_id: int = 31337, extra_args: list[str] | None = None
    ) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.extra_args = extra_args or []
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id (to pause it with SIGSTOP in fault tests), or None when stopped."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, timeout: float = 15.0) -> Anvil:
        exe = find_anvil()
        if exe is None:
            raise ChainError("anvil was not found: run `make setup` (it installs anvil from npm)")
        self._proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--chain-id", str(self.chain_id), "--silent", *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 2}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise ChainError(f"anvil exited at start: {err.strip()}")
            try:
                if w3.is_connected():
                    return self
            except Exception:  # not up yet
                pass
            time.sleep(0.05)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
