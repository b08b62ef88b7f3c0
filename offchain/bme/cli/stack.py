"""`bme stack up`: a local protocol to use by hand, until Ctrl-C.

It starts anvil, deploys the protocol, writes the stack's accounts as named wallets (`alice` and `bob`, users
with 10,000 CMP each; `operator`, whose node serves the embedded model), starts the operator node (registered,
1,000 CMP staked), a relayer and a price feeder, and prints the URLs, the wallets and the environment for the
other `bme` commands. A devnet faucet (devnet account 9, 1,000,000 CMP) backs `bme devnet fund`.

Files go to the stack directory (`--dir`, `BME_STACK_DIR`, default `~/.bme/stack`), never to the working tree:
the deployment (removed when the stack stops, since its chain goes with it), the logs, the relayer's database
and the node's job journal. Ports are fixed by default (8545, 8088, 8090) so the other commands' defaults find
the stack; a port already taken is one clear error. When a process of the stack dies, everything stops at once
and the command exits 1 naming it; Ctrl-C or SIGTERM stops everything and exits 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bme import devnet_ops
from bme.chain.deploy import SMOLLM2
from bme.children import Death
from bme.cli.common import fmt, parse_amount, usd
from bme.errors import ConfigError
from bme.stack import OPERATOR_STAKE, LocalStack, StackConfig, port_taken
from bme.stack_files import DEFAULT_STACK_DIR, DEPLOYMENT_NAME, STACK_DIR_ENV, stack_dir
from bme.stack_wallets import DEVNET_PASSWORD, StackWallet, import_wallet
from bme.user.wallets import DEFAULT_WALLET_DIR, WALLET_DIR_ENV, wallet_dir
from bme.wallet.keystore import PASSWORD_ENV

stack_app = typer.Typer(
    help="A local protocol to use by hand: anvil, the contracts, wallets, a node, a relayer, a price feeder.",
    no_args_is_help=True,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

USERS = ("alice", "bob")
OPERATOR = "operator"
OPERATOR_ROLE = "operator of the node"
USER_FUNDS = 10_000 * 10**18
#: Files of an earlier run that belong to its chain, gone with it.
STALE = (
    DEPLOYMENT_NAME,
    "relayer.db",
    "relayer.db-wal",
    "relayer.db-shm",
    "node-0-journal.jsonl",
    "anvil.log",
    "node-0.log",
    "relayer-0.log",
)


@stack_app.callback()
def _stack() -> None:
    """Keeps `up` a named subcommand (`bme stack up`) while it is the only one."""


class StopRequested(Exception):
    """Ctrl-C or SIGTERM: stop the stack and exit 0."""


@dataclass(frozen=True)
class Ports:
    rpc: int
    relayer: int
    node: int

    def check(self) -> None:
        """Each port distinct and free, or a `ConfigError` naming the option that changes it."""
        named = [
            ("RPC (anvil)", self.rpc, "--rpc-port"),
            ("relayer", self.relayer, "--relayer-port"),
            ("node", self.node, "--node-port"),
        ]
        if len({p for _n, p, _o in named}) != len(named):
            raise ConfigError(f"the ports must differ: {', '.join(f'{o} {p}' for _n, p, o in named)}")
        for name, port, option in named:
            if port_taken(port):
                raise ConfigError(
                    f"port {port} for the {name} is taken: another process listens there (a stack already "
                    f"running?); choose another with {option}"
                )


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """One `bme stack up` per stack directory: a second one would wipe the first one's files."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "stack.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise ConfigError(
                f"another `bme stack up` (pid {owner}) runs with {directory}: stop it, or pass --dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _still_stopping(_signum: int, _frame: FrameType | None) -> None:
    err_console.print("still stopping the stack...")


def _ignore_signals() -> None:
    """While the stack stops: SIGINT and SIGTERM are only noted, so that no child is left behind."""
    signal.signal(signal.SIGINT, _still_stopping)
    signal.signal(signal.SIGTERM, _still_stopping)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `StopRequested` once; while the stack stops, further ones are only noted."""

    def first(signum: int, _frame: FrameType | None) -> None:
        _ignore_signals()
        raise StopRequested(signal.Signals(signum).name)

    previous = {s: signal.signal(s, first) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _report(death: Death) -> None:
    err_console.print(escape(death.report()))


def _wallets(stack: LocalStack, directory: Path, password: str) -> list[StackWallet]:
    wallets = [import_wallet(OPERATOR, OPERATOR_ROLE, stack.operators[0], directory, password)]
    for name, account in zip(USERS, stack.users, strict=True):
        wallets.append(import_wallet(name, "user", account, directory, password))
    return wallets


@stack_app.command("up")
def up(
    directory: Annotated[
        Path,
        typer.Option("--dir", envvar=STACK_DIR_ENV, help=f"Where the stack's files go [{STACK_DIR_ENV}]."),
    ] = DEFAULT_STACK_DIR,
    rpc_port: Annotated[int, typer.Option(envvar="BME_STACK_RPC_PORT", help="anvil's JSON-RPC port.")] = 8545,
    relayer_port: Annotated[
        int, typer.Option(envvar="BME_STACK_RELAYER_PORT", help="The relayer's API port.")
    ] = 8088,
    node_port: Annotated[
        int, typer.Option(envvar="BME_STACK_NODE_PORT", help="The operator node's port.")
    ] = 8090,
    epoch_length: Annotated[int, typer.Option(help="Seconds per reward epoch.")] = 3_600,
    price: Annotated[str, typer.Option(help="The oracle's first price, dollars per CMP.")] = "1.00",
    wallet_dir_: Annotated[
        Path,
        typer.Option(
            "--wallet-dir", envvar=WALLET_DIR_ENV, help=f"Where the wallets are written [{WALLET_DIR_ENV}]."
        ),
    ] = DEFAULT_WALLET_DIR,
) -> None:
    """Run a local protocol (anvil, contracts, wallets, node, relayer, price feeder) until Ctrl-C."""
    ports = Ports(rpc_port, relayer_port, node_port)
    initial_price = parse_amount(price, 18, "USD")
    if initial_price == 0:
        raise ConfigError("--price must be above 0")
    work = stack_dir(directory).resolve()
    wallets_at = wallet_dir(wallet_dir_)
    with _directory_lock(work), _stop_on_signals():
        ports.check()
        for name in STALE:
            (work / name).unlink(missing_ok=True)
        config = StackConfig(
            operators=1,
            users=len(USERS),
            user_funds=USER_FUNDS,
            epoch_length=epoch_length,
            work_dir=work,
            rpc_port=ports.rpc,
            price=initial_price,
            faucet_funds=devnet_ops.FAUCET_CMP,
            on_death=_report,
        )
        password = os.environ.get(PASSWORD_ENV) or DEVNET_PASSWORD
        started = time.monotonic()
        stack = LocalStack(config)
        try:
            with ThreadPoolExecutor(1) as pool:  # the keystores' key derivation, while the processes start
                wallets = pool.submit(_wallets, stack, wallets_at, password)
                stack.start()
                console.print(f"anvil on {stack.anvil.url}; the protocol deployed")
                with console.status("starting the operator node (embedded model) and the relayer"):
                    node = stack.start_node(0, port=ports.node, wait=False)
                    relayer = stack.start_relayer(
                        port=ports.relayer, extra_env={"BME_RELAYER_BATCH_AGE_S": "0.2"}, wait=False
                    )
                    stack.node_ready(0, node)
                    stack.relayer_ready(relayer)
                _print_stack(stack, ports, wallets.result(), wallets_at, password, time.monotonic() - started)
            while True:
                time.sleep(3600)
        except StopRequested as exc:
            console.print(f"{exc}: stopping anvil, the node and the relayer")
        finally:
            _ignore_signals()
            stack.stop()
            (work / DEPLOYMENT_NAME).unlink(missing_ok=True)
        console.print(f"stopped; logs kept in {work}")


def _rows(rows: list[tuple[str, str]]) -> None:
    """Aligned lines, never wrapped or cut: the addresses and paths are for copying."""
    width = max(len(k) for k, _v in rows)
    for key, value in rows:
        console.print(f"  {key:<{width}}  {value}", markup=False)


def _print_stack(
    stack: LocalStack, ports: Ports, wallets: list[StackWallet], wallets_at: Path, password: str, took: float
) -> None:
    p, d = stack.protocol, stack.protocol.deployment
    relayer_url, node_url = f"http://127.0.0.1:{ports.relayer}", f"http://127.0.0.1:{ports.node}"
    _rows(
        [
            ("RPC", f"{stack.anvil.url} (anvil, chain id {d.chain_id})"),
            ("relayer", f"{relayer_url} (API documentation at {relayer_url}/docs)"),
            ("node", f"{node_url} (model {SMOLLM2.model_id}, {SMOLLM2.name})"),
            ("deployment", str(stack.deployment_file)),
            ("logs", f"{stack.work_dir}/{{anvil,node-0,relayer-0}}.log"),
        ]
    )
    default = password == DEVNET_PASSWORD
    console.print(
        f"wallets in {wallets_at}, password "
        + (
            f"{DEVNET_PASSWORD!r} (the devnet default; set {PASSWORD_ENV} to choose another)"
            if default
            else f"${PASSWORD_ENV}"
        ),
        markup=False,
    )
    rows = []
    for w in wallets:
        held = fmt(int(p.token.functions.balanceOf(w.address).call()), 18, "CMP")
        if w.role == OPERATOR_ROLE:
            held += f" + {fmt(OPERATOR_STAKE, 18, 'CMP')} staked"
        rows.append((w.name, f"{w.address}  {held}, {w.role}" + (f" ({w.note})" if w.note else "")))
    _rows(rows)
    faucet = stack.faucet
    assert faucet is not None
    console.print("devnet accounts (their keys are public):", markup=False)
    _rows(
        [
            ("relayer", stack.relayer_account.address),
            (
                "feeder",
                f"{stack.feeder.address} (pushes the oracle price, {usd(stack.price, 18)} per CMP, every "
                f"{stack.config.price_interval_s:g} s; `bme devnet price` changes it)",
            ),
            ("faucet", f"{faucet.address} ({fmt(devnet_ops.FAUCET_CMP, 18, 'CMP')} for `bme devnet fund`)"),
        ]
    )
    console.print("for the bme commands in another terminal:", markup=False)
    console.print(f"  export BME_RPC_URL={stack.anvil.url}", markup=False)
    console.print(f"  export BME_DEPLOYMENT={stack.deployment_file}", markup=False)
    console.print(f"  export BME_RELAYER_URL={relayer_url}", markup=False)
    console.print(f"ready in {took:.1f} s: Ctrl-C stops everything", markup=False)
    sys.stdout.flush()
