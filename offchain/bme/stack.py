"""A whole local protocol: anvil, the contracts, operator nodes and relayers, each a real process.

The demo, `bme stack up`, the end-to-end tests and the benchmarks all stand on this: `LocalStack` starts a
devnet, deploys and configures the protocol (price book with the embedded model, oracle price, emission
schedule), funds the accounts it names, and starts and stops `bme operator serve` and `bme relayer run`
processes (on free ports unless told which). Devnet keys are public knowledge: this is for local devnets only.

The stack watches its children (`bme.children.Watcher`): when one exits unexpectedly, the death is reported
at once (`StackConfig.on_death`, by default on stderr: the process, its exit status or signal, the end of its
log), everything else is stopped, and the thread that started the stack gets `ProcessDied` raised wherever it
waits (a long-poll, a health check, a test), instead of waiting out a timeout and reporting a symptom.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from bme import devnet_ops
from bme.chain.client import ChainClient
from bme.chain.deploy import SMOLLM2, DeployConfig, ModelListing, Protocol, deploy_protocol
from bme.chain.devnet import devnet_keys, find_anvil, free_port
from bme.children import Death, Process, ProcessDied, Watcher, spawn
from bme.errors import ChainError, ConfigError

__all__ = ["CMP", "OPERATOR_STAKE", "LocalStack", "Process", "ProcessDied", "StackConfig", "bme_command"]

CMP = 10**18
OPERATOR_STAKE = 1_000 * CMP
#: The signal that makes the stack's starting thread raise `ProcessDied` while it waits.
DEATH_SIGNAL = signal.SIGUSR1


def _report_on_stderr(death: Death) -> None:
    sys.stderr.write(death.report() + "\n")
    sys.stderr.flush()


@dataclass
class StackConfig:
    """What to set up. Accounts: 0 deploys, 1 relays, 2 feeds the oracle, then operators, then users; with
    `faucet_funds`, devnet account 9 holds a CMP reserve for `bme devnet fund`."""

    operators: int = 1
    users: int = 1
    user_funds: int = 10_000 * CMP
    epoch_length: int = 3_600
    models: list[ModelListing] = field(default_factory=lambda: [SMOLLM2])  # the price book
    work_dir: Path = field(default_factory=lambda: Path("."))
    anvil_args: list[str] = field(default_factory=list)
    rpc_port: int | None = None  # None: a free port
    price: int = CMP  # $1.00 per CMP
    #: The feeder pushes the oracle's current price this often (its staleness limit is 30 s), and at once when
    #: the chain's clock jumps past the last reading; 0: only on demand.
    price_interval_s: float = 10.0
    faucet_funds: int = 0
    #: Called (on the watcher's thread) when a child dies unexpectedly, before everything is stopped.
    on_death: Callable[[Death], None] = _report_on_stderr
    #: Raise `ProcessDied` in the thread that started the stack (if it is the main thread) on a death.
    interrupt_main: bool = True


def bme_command() -> list[str]:
    """How to run the `bme` CLI of this very installation."""
    return [sys.executable, "-m", "bme.cli.main"]


def port_taken(port: int) -> bool:
    """True when something listens on (or holds) `port` on the loopback interface."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_http(
    url: str,
    proc: Process | None = None,
    timeout: float = 60.0,
    check: Callable[[], None] | None = None,
    died: Callable[[Process], Death] | None = None,
) -> None:
    """Waits until `url` answers 200; raises `ProcessDied` as soon as `proc` exits (or `check` raises).

    `died` records the exit (a stack's watcher, so that it is reported once, with the log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check is not None:
            check()
        if proc is not None and not proc.alive():
            raise ProcessDied((died or Death.of)(proc))
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise ChainError(f"{url} did not answer within {timeout:g} s" + (f" (log: {proc.log})" if proc else ""))


class StackAnvil:
    """anvil as a child of the stack: its log in the work directory, watched like the other children."""

    def __init__(self, port: int | None, extra_args: list[str], chain_id: int = 31337) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.extra_args = extra_args
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Process | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id (to pause it with SIGSTOP in fault tests), or None when stopped."""
        return self.process.pid if self.process is not None and self.process.alive() else None

    def start(self, work_dir: Path, timeout: float = 15.0) -> Process:
        exe = find_anvil()
        if exe is None:
            raise ChainError("anvil was not found: run `make setup` (it installs anvil from npm)")
        argv = [exe, "--port", str(self.port), "--chain-id", str(self.chain_id), "--silent", *self.extra_args]
        self.process = proc = spawn(
            "anvil", argv, log=work_dir / "anvil.log", env=dict(os.environ), cwd=work_dir
        )
        proc.url = self.url
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ProcessDied(Death.of(proc))
            try:
                reply = httpx.post(
                    self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1
                )
                if reply.status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise ChainError(f"anvil did not answer on {self.url} within {timeout:g} s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=5)


class LocalStack:
    """anvil plus the deployed protocol; nodes and relayers are started on demand. A context manager."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        keys = devnet_keys(3 + self.config.operators + self.config.users)
        accounts: list[LocalAccount] = [Account.from_key(k) for k in keys]
        self.deployer, self.relayer_account, self.feeder = accounts[0], accounts[1], accounts[2]
        self.operators = accounts[3 : 3 + self.config.operators]
        self.users = accounts[3 + self.config.operators :]
        self.faucet: LocalAccount | None = None
        if self.config.faucet_funds:
            if len(accounts) > devnet_ops.FAUCET_INDEX:
                raise ConfigError(
                    f"a stack with a faucet has at most {devnet_ops.FAUCET_INDEX - 3} operators and users"
                )
            self.faucet = devnet_ops.faucet_account()
        self.price = self.config.price
        self._feeder_client: ChainClient | None = None
        self._feeder_protocol: Protocol | None = None
        self._feed_lock = threading.Lock()
        self._stop_feeding = threading.Event()
        self._feeding: threading.Thread | None = None
        self.anvil = StackAnvil(self.config.rpc_port, self.config.anvil_args)
        self.processes: list[Process] = []
        self.work_dir = self.config.work_dir
        self.deployment_file = self.work_dir / "deployment.json"
        self._protocol: Protocol | None = None
        self._watcher = Watcher(self._children, self._on_death)
        self._stop_lock = threading.Lock()
        self._closing = False
        self._main_ident: int | None = None
        self._previous_handler: signal.Handlers | Callable[[int, FrameType | None], object] | int | None = (
            None
        )

    @property
    def protocol(self) -> Protocol:
        assert self._protocol is not None, "start the stack first"
        return self._protocol

    @property
    def client(self) -> ChainClient:
        return self.protocol.client

    @property
    def death(self) -> Death | None:
        """The child that died unexpectedly, if one did."""
        return self._watcher.death

    def check(self) -> None:
        """Raises `ProcessDied` if a child of the stack died unexpectedly."""
        if self._watcher.death is not None:
            raise ProcessDied(self._watcher.death)

    def start(self) -> LocalStack:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._arm_main_thread()
        try:
            self.anvil.start(self.work_dir)
        except ProcessDied:
            assert self.anvil.process is not None
            raise ProcessDied(self._watcher.notice(self.anvil.process)) from None
        self._watcher.start()
        client = ChainClient.connect(self.anvil.url)
        genesis: dict[str, int] = {u.address: self.config.user_funds for u in self.users}
        genesis.update({o.address: OPERATOR_STAKE * 2 for o in self.operators})
        if self.faucet is not None:
            genesis[self.faucet.address] = self.config.faucet_funds
        self._protocol = deploy_protocol(
            client,
            self.deployer,
            DeployConfig(
                epoch_length=self.config.epoch_length,
                relayers=[self.relayer_account.address],
                genesis=genesis,
                models=list(self.config.models),
                feeders=[self.feeder.address],
            ),
        )
        self.protocol.deployment.save(self.deployment_file)
        self._feeder_client = ChainClient.connect(self.anvil.url)
        self._feeder_protocol = Protocol.at(self._feeder_client, self.protocol.deployment)
        self.push_price(self.price)
        if self.config.price_interval_s > 0:
            self._feeding = threading.Thread(target=self._feed, name="price-feeder", daemon=True)
            self._feeding.start()
        return self

    # -- the oracle ---------------------------------------------------------------------------------------

    def push_price(self, price: int | None = None) -> None:
        """A fresh oracle reading from the feeder: `price`, else the oracle's current price (the last one
        pushed by anyone, `bme devnet price` included), stamped with the chain's time."""
        assert self._feeder_protocol is not None
        with self._feed_lock:
            self.price, _at = devnet_ops.push_price(
                self._feeder_protocol, self.feeder, price, 0 if price is not None else None
            )

    def _feed(self) -> None:
        """Keeps the oracle fresh: a push every `price_interval_s`, and at once when the chain's clock has
        jumped past the last reading (`bme devnet advance`, a test's time travel)."""
        interval = self.config.price_interval_s
        last = time.monotonic()
        while not self._stop_feeding.wait(min(1.0, interval)):
            try:
                assert self._feeder_protocol is not None
                if time.monotonic() - last < interval:
                    _price, updated_at, _band = self._feeder_protocol.oracle.functions.latestPrice().call()
                    if self._feeder_protocol.client.timestamp() - int(updated_at) < interval:
                        continue
                self.push_price()
                last = time.monotonic()
            except Exception:  # anvil stopping or paused by a fault test: try again next time
                continue

    # -- processes ---------------------------------------------------------------------------------------

    def _children(self) -> list[Process]:
        anvil = [self.anvil.process] if self.anvil.process is not None else []
        return anvil + list(self.processes)

    def _spawn(self, name: str, args: list[str], env: dict[str, str], url: str) -> Process:
        self.check()
        proc = spawn(
            name,
            [*bme_command(), *args],
            log=self.work_dir / f"{name}.log",
            env={**os.environ, **env},
            cwd=self.work_dir,
            url=url,
        )
        self.processes.append(proc)
        return proc

    def start_node(
        self,
        index: int = 0,
        *,
        port: int | None = None,
        register: bool = True,
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Process:
        """Starts operator `index`'s node (the embedded model) and registers it in the registry; with
        `wait=False` it returns at once, and `node_ready` waits and registers (to start other processes
        while the model loads)."""
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
        if wait:
            self.node_ready(index, proc, register=register)
        return proc

    def node_ready(self, index: int, proc: Process, *, register: bool = True) -> None:
        """Waits until node `proc` of operator `index` answers, then registers it if it is not yet."""
        wait_http(proc.url + "/healthz", proc, timeout=120, check=self.check, died=self._watcher.notice)
        operator = self.operators[index]
        if register and self.protocol.registry.functions.operatorOf(operator.address).call()[3] == 0:
            self.register_operator(index, proc.url)

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
            self.relayer_ready(proc)
        return proc

    def relayer_ready(self, proc: Process) -> None:
        """Waits until relayer `proc` answers."""
        wait_http(proc.url + "/healthz", proc, timeout=60, check=self.check, died=self._watcher.notice)

    # -- deaths and stopping ------------------------------------------------------------------------------

    def _arm_main_thread(self) -> None:
        """When started from the main thread: a death raises `ProcessDied` there, wherever it waits."""
        if not self.config.interrupt_main or threading.current_thread() is not threading.main_thread():
            return
        self._main_ident = threading.main_thread().ident

        def _raise_death(_signum: int, _frame: FrameType | None) -> None:
            if self._watcher.death is not None and not self._closing:
                raise ProcessDied(self._watcher.death)

        self._previous_handler = signal.signal(DEATH_SIGNAL, _raise_death)

    def _on_death(self, death: Death) -> None:
        """On the watcher's thread: report, wake the main thread, stop everything else."""
        with contextlib.suppress(Exception):
            self.config.on_death(death)
        if self._main_ident is not None and not self._closing and threading.get_ident() != self._main_ident:
            with contextlib.suppress(OSError):
                signal.pthread_kill(self._main_ident, DEATH_SIGNAL)
        self._stop_children(timeout=5.0)

    def _stop_children(self, timeout: float = 15.0) -> None:
        with self._stop_lock:
            self._stop_feeding.set()
            for proc in reversed(self.processes):
                proc.stop(timeout=timeout)
            self.anvil.stop()

    def stop(self) -> None:
        """Stops everything (a no-op for what is already stopped); leaves the processes list empty."""
        self._closing = True
        self._watcher.stop()
        self._stop_feeding.set()
        if self._feeding is not None and self._feeding is not threading.current_thread():
            self._feeding.join(timeout=30)
        self._stop_children()
        self.processes.clear()
        if self._main_ident is not None and threading.current_thread() is threading.main_thread():
            signal.signal(DEATH_SIGNAL, self._previous_handler or signal.SIG_DFL)
            self._main_ident = None

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
        if self.death is not None and isinstance(exc, Exception) and not isinstance(exc, ProcessDied):
            # What the body saw (a refused connection, a failed step) is a symptom: name the cause.
            raise ProcessDied(self.death) from exc
