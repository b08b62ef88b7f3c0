"""A whole local protocol: anvil, the contracts, operator nodes and relayers, each a real process.

The demo, the end-to-end tests and the benchmarks all stand on this: `LocalStack` starts a devnet, deploys and
configures the protocol (price book with the embedded model, oracle price, emission schedule), funds the
accounts it names, and starts and stops `bme operator serve` and `bme relayer run` processes on free ports.
Devnet keys are public knowledge: this is for local devnets only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from bme.chain.client import ChainClient
from bme.chain.deploy import SMOLLM2, DeployConfig, ModelListing, Protocol, deploy_protocol
from bme.chain.devnet import Anvil, devnet_keys, free_port
from bme.errors import ChainError

CMP = 10**18
OPERATOR_STAKE = 1_000 * CMP


@dataclass
class StackConfig:
    """What to set up. Accounts: 0 deploys, 1 relays, 2 feeds the oracle, then operators, then users."""

    operators: int = 1
    users: int = 1
    user_funds: int = 10_000 * CMP
    epoch_length: int = 3_600
    models: list[ModelListing] = field(default_factory=lambda: [SMOLLM2])  # the price book
    work_dir: Path = field(default_factory=lambda: Path("."))
    anvil_args: list[str] = field(default_factory=list)
    price: int = CMP  # $1.00 per CMP
    #: The feeder pushes the price this often (the oracle's staleness limit is 30 s); 0: only on demand.
    price_interval_s: float = 10.0


@dataclass
class Process:
    """A child process with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def bme_command() -> list[str]:
    """How to run the `bme` CLI of this very installation."""
    return [sys.executable, "-m", "bme.cli.main"]


def wait_http(url: str, proc: Process | None = None, timeout: float = 60.0) -> None:
    """Waits until `url` answers 200, or raises with the tail of the process's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise ChainError(f"{proc.name} exited at start:\n{_tail(proc.log)}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise ChainError(f"{url} did not answer within {timeout:g} s" + (f":\n{_tail(proc.log)}" if proc else ""))


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LocalStack:
    """anvil plus the deployed protocol; nodes and relayers are started on demand. A context manager."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        keys = devnet_keys(3 + self.config.operators + self.config.users)
        accounts: list[LocalAccount] = [Account.from_key(k) for k in keys]
        self.deployer, self.relayer_account, self.feeder = accounts[0], accounts[1], accounts[2]
        self.operators = accounts[3 : 3 + self.config.operators]
        self.users = accounts[3 + self.config.operators :]
        self.price = self.config.price
        self._feeder_client: ChainClient | None = None
        self._feed_lock = threading.Lock()
        self._last_push = 0
        self._stop_feeding = threading.Event()
        self._feeding: threading.Thread | None = None
        self.anvil = Anvil(extra_args=self.config.anvil_args)
        self.processes: list[Process] = []
        self.work_dir = self.config.work_dir
        self.deployment_file = self.work_dir / "deployment.json"
        self._protocol: Protocol | None = None

    @property
    def protocol(self) -> Protocol:
        assert self._protocol is not None, "start the stack first"
        return self._protocol

    @property
    def client(self) -> ChainClient:
        return self.protocol.client

    def start(self) -> LocalStack:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.anvil.start()
        client = ChainClient.connect(self.anvil.url)
        genesis: dict[str, int] = {u.address: self.config.user_funds for u in self.users}
        genesis.update({o.address: OPERATOR_STAKE * 2 for o in self.operators})
        self._protocol = deploy_protocol(
            client,
            self.deployer,
            DeployConfig(
                epoch_length=self.config.epoch_length,
                relayers=[self.relayer_account.address],
                genesis=genesis,
                models=list(self.config.models),
                feeder=self.feeder.address,
            ),
        )
        self.protocol.deployment.save(self.deployment_file)
        self._feeder_client = ChainClient.connect(self.anvil.url)
        self.push_price()
        if self.config.price_interval_s > 0:
            self._feeding = threading.Thread(target=self._feed, name="price-feeder", daemon=True)
            self._feeding.start()
        return self

    def push_price(self, price: int | None = None) -> None:
        """The feeder's next oracle reading (`price`, else the current one), stamped with the chain's time."""
        assert self._feeder_client is not None
        with self._feed_lock:
            if price is not None:
                self.price = price
            client = self._feeder_client
            oracle = client.contract("ManualPriceOracle", self.protocol.deployment.oracle)
            now = client.timestamp()
            if now <= self._last_push:
                # No later block since the last push: make one, a second later (anvil stamps blocks mined in
                # the same wall-clock second with the same time, and the oracle takes only newer readings).
                client.w3.provider.make_request("evm_mine", [self._last_push + 1])  # type: ignore[arg-type]
                now = client.timestamp()
            client.send(self.feeder, oracle.functions.pushPrice(self.price, 0, now), gas=150_000)
            self._last_push = now

    def _feed(self) -> None:
        while not self._stop_feeding.wait(self.config.price_interval_s):
            try:
                self.push_price()
            except Exception:  # anvil stopping or paused by a fault test: try again next time
                continue

    # -- processes ---------------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str], url: str) -> Process:
        log = self.work_dir / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(
            [*bme_command(), *args],
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.work_dir,
        )
        handle.close()
        proc = Process(name, popen, log, url)
        self.processes.append(proc)
        return proc

    def start_node(
        self,
        index: int = 0,
        *,
        port: int | None = None,
        register: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> Process:
        """Starts operator `index`'s node (the embedded model) and registers it in the registry."""
        operator = self.operators[index]
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        proc = self._spawn(
            f"node-{index}",
            ["operator", "serve", "--port", str(port), "--log-level", "warning"],
            {
                "BME_NODE_TRUSTED_RELAYER": self.relayer_account.address,
                "BME_NODE_OPERATOR_ADDRESS": operator.address,
                "BME_NODE_JOB_JOURNAL": str(self.work_dir / f"node-{index}-journal.jsonl"),
                "BME_NODE_MAX_QUEUE": "256",
                **(extra_env or {}),
            },
            url,
        )
        wait_http(url + "/healthz", proc, timeout=120)
        if register and self.protocol.registry.functions.operatorOf(operator.address).call()[3] == 0:
            self.register_operator(index, url)
        return proc

    def register_operator(self, index: int, endpoint: str) -> None:
        p, operator = self.protocol, self.operators[index]
        self.client.send(operator, p.token.functions.approve(p.registry.address, OPERATOR_STAKE))
        self.client.send(
            operator, p.registry.functions.register(OPERATOR_STAKE, endpoint, [SMOLLM2.model_id])
        )

    def start_relayer(
        self,
        *,
        instance: str = "relayer-0",
        database_url: str | None = None,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Process:
        """Starts `bme relayer run` with the relayer key from the environment."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            "BME_RELAYER_PRIVATE_KEY": "0x" + bytes(self.relayer_account.key).hex(),
            "BME_RELAYER_RPC_URL": self.anvil.url,
            "BME_RELAYER_WS_URL": self.anvil.url.replace("http://", "ws://"),
            "BME_RELAYER_DEPLOYMENT": str(self.deployment_file.resolve()),
            "BME_RELAYER_DATABASE_URL": database_url
            or f"sqlite:///{(self.work_dir / 'relayer.db').resolve()}",
            "BME_RELAYER_INSTANCE": instance,
            "BME_RELAYER_PORT": str(port),
            **(extra_env or {}),
        }
        proc = self._spawn(instance, ["relayer", "run", "--log-level", "warning"], env, url)
        if wait:
            wait_http(url + "/healthz", proc, timeout=60)
        return proc

    def stop(self) -> None:
        self._stop_feeding.set()
        if self._feeding is not None:
            self._feeding.join(timeout=30)
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        self.anvil.stop()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
