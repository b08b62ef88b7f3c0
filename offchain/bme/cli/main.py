"""The `bme` command line."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bme.cli import ask
from bme.cli.devnet import devnet_app
from bme.cli.quote import quote_command
from bme.cli.scenario import bench_scenario_command, scenario_app
from bme.cli.stack import stack_app
from bme.cli.wallet import wallet_app
from bme.errors import BmeError

app = typer.Typer(help="Burn-mint equilibrium protocol for paying AI inference.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: figures measured side by side in one run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(scenario_app, name="scenario")
bench_app.command("scenario")(bench_scenario_command)
app.add_typer(wallet_app, name="wallet")
app.command("quote")(quote_command)
app.command("ask")(ask.ask)
app.command("jobs")(ask.jobs)
app.command("refund")(ask.refund)
app.add_typer(stack_app, name="stack")
app.add_typer(devnet_app, name="devnet")

console = Console()
err_console = Console(stderr=True)


@bench_app.command("gas")
def bench_gas(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Gas used by the protocol's calls on anvil, beside a plain ERC-20 transfer of CMP."""
    from bme.bench.gas import measure

    with console.status("measuring gas on anvil") as status:
        figures = measure(lambda step: status.update(f"measuring gas on anvil: {step}"))
    if json_output:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        console.print_json(json.dumps(figures))


@bench_app.command("codec")
def bench_codec(
    batch: Annotated[int, typer.Option(min=1, help="Settlements in the `settle` batch.")] = 100,
    logs: Annotated[int, typer.Option(min=1, help="Event logs to decode.")] = 1_000,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """CPU time of the relayer's hot-path encodings: a `settle` batch's call data, event logs decoded."""
    from bme.bench.codec import measure

    figures = measure(batch, logs)
    if json_output:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        console.print_json(json.dumps(figures))


@bench_app.command("e2e")
def bench_e2e(
    jobs: Annotated[
        int, typer.Option(help="Rounds: one direct call and one paid job each (at least 50).")
    ] = 50,
    max_tokens: Annotated[int, typer.Option(help="Tokens of each answer.")] = 64,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Burn-to-answer time through the protocol against calling the operator node directly."""
    from bme.bench.e2e import run_e2e_bench

    if jobs < 1 or max_tokens < 1:
        raise BmeError("--jobs and --max-tokens must be at least 1")
    with console.status("benchmarking end to end") as status:
        figures = run_e2e_bench(jobs, max_tokens, lambda m: status.update(f"benchmarking end to end: {m}"))
    if json_output:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        console.print_json(json.dumps(figures))


@app.command("demo")
def demo(
    max_tokens: Annotated[int, typer.Option(help="Most tokens of the model's answer.")] = 48,
) -> None:
    """The whole protocol on a devnet with real processes: pay for an answer, settle, claim, redeem."""
    from bme.cli.demo import run_demo

    run_demo(console, max_tokens)


def _register_optional() -> None:
    """Commands of parts that may be absent from an install are added when they import."""
    try:
        from bme.cli.operator_node import bench_node_command, operator_app
    except ImportError:
        return
    import bme.cli.operator  # noqa: F401  (adds register, claim, redeem... to operator_app)

    app.add_typer(operator_app, name="operator")
    bench_app.command("node")(bench_node_command)


_register_optional()


def _register_relayer() -> None:
    from bme.cli.relayer import bench_relayer_command, relayer_app
    from bme.cli.relayer_db import db_app

    relayer_app.add_typer(db_app, name="db")
    app.add_typer(relayer_app, name="relayer")
    bench_app.command("relayer")(bench_relayer_command)


_register_relayer()


def main() -> None:
    """Entry point: a `BmeError` becomes one line on stderr and exit code 1, never a traceback."""
    try:
        app(standalone_mode=False)
    except BmeError as exc:
        # One line whatever the terminal's width; the message is text, not markup.
        err_console.print("[red]error:[/red]", escape(str(exc)), soft_wrap=True)
        raise SystemExit(1) from None
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        raise SystemExit(130) from None
    except Exception as exc:
        import click

        # Recent Typer releases raise their own copy of click's exceptions, derived from TyperException.
        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
