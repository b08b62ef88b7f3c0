"""The node's commands: `bme operator serve` and `bme operator openapi` (`operator_app`), and `bme bench node`
(`bench_node_command`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from bme.cli.common import SchemaOutput, write_schema
from bme.errors import ConfigError
from bme.node.settings import NodeSettings

operator_app = typer.Typer(
    help="Run an operator node: an OpenAI-compatible server for the relayer's paid jobs.",
    no_args_is_help=True,
)
console = Console()


@operator_app.callback()
def _operator() -> None:
    """Keeps `serve` a named subcommand (`bme operator serve`) while it is the only one."""


@operator_app.command("serve")
def serve(
    host: str | None = typer.Option(None, help="Address to listen on [BME_NODE_HOST, default 127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port [BME_NODE_PORT, default 8090]."),
    backend: str | None = typer.Option(
        None, help="'embedded' (SmolLM2-135M-Instruct on this machine) or 'upstream' [BME_NODE_BACKEND]."
    ),
    upstream_url: str | None = typer.Option(None, help="Upstream base URL, e.g. http://127.0.0.1:8000/v1."),
    upstream_model: str | None = typer.Option(None, help="Model name at the upstream server."),
    model_name: str | None = typer.Option(None, help="Model id clients ask for (defaults per backend)."),
    trusted_relayer: str | None = typer.Option(
        None, help="Relayer address to accept [BME_NODE_TRUSTED_RELAYER]."
    ),
    operator_address: str | None = typer.Option(
        None, help="This node's operator address [BME_NODE_OPERATOR_ADDRESS]."
    ),
    max_concurrency: int | None = typer.Option(None, help="Completions at once [BME_NODE_MAX_CONCURRENCY]."),
    max_queue: int | None = typer.Option(None, help="Requests that may wait [BME_NODE_MAX_QUEUE]."),
    job_journal: Annotated[
        Path | None,
        typer.Option(help="Journal of paid jobs: each runs once across restarts [BME_NODE_JOB_JOURNAL]."),
    ] = None,
    log_level: str = typer.Option("info", help="Logging level."),
) -> None:
    """Serve /v1/chat/completions and /v1/models to the trusted relayer, plus /healthz, /readyz and /metrics.

    Every setting can also come from a BME_NODE_* environment variable or .env; the options win.
    The upstream API key is read from BME_NODE_UPSTREAM_API_KEY only, so it stays out of the process list.
    The embedded model is loaded and generates a token before the node listens; if its runtime cannot, or
    later keeps crashing on restart, the node exits with code 1 and a one-line reason.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "backend": backend,
        "upstream_url": upstream_url,
        "upstream_model": upstream_model,
        "model_name": model_name,
        "trusted_relayer": trusted_relayer,
        "operator_address": operator_address,
        "max_concurrency": max_concurrency,
        "max_queue": max_queue,
        "job_journal": job_journal,
    }
    try:
        settings = NodeSettings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_settings_problems(exc)) from None

    from bme.node.app import create_app
    from bme.node.backends import build_backend
    from bme.node.embedded import EmbeddedBackend
    from bme.node.errors import ModelRuntimeFailed
    from bme.node.server import serve_forever

    # Loads the model and generates a token before anything listens: a runtime that cannot run stops the
    # node here, with ModelRuntimeFailed's one-line reason (`bme` prints it and exits 1).
    node_backend = build_backend(settings)
    app = create_app(settings, node_backend, owns_backend=True)  # closed on the server's loop at shutdown
    if isinstance(node_backend, EmbeddedBackend) and node_backend.runtime is not None:
        console.print(node_backend.runtime.line(), soft_wrap=True, markup=False, highlight=False)
    console.print(
        f"operator node: {node_backend.model_id} ({node_backend.kind}) "
        f"on http://{settings.host}:{settings.port}, "
        f"trusting relayer {settings.trusted_relayer} for operator {settings.operator_address}",
        soft_wrap=True,
    )
    serve_forever(
        app,
        settings.host,
        settings.port,
        log_level=log_level.lower(),
        stop_when=lambda: node_backend.health().failed,
    )
    health = node_backend.health()
    if health.failed:
        raise ModelRuntimeFailed(health.reason or "the model runtime failed")


@operator_app.command("openapi")
def openapi(output: SchemaOutput = None) -> None:
    """Print the node API's OpenAPI schema (the node does not serve it: its routes are OpenAI's, plus health,
    readiness and metrics)."""
    import asyncio

    from bme.node.app import create_app
    from bme.node.upstream import UpstreamBackend

    # The routes do not depend on the settings: any valid ones will do, read from nowhere (not the
    # environment), with a backend that never connects.
    placeholder = "0x" + "00" * 19 + "01"
    settings = NodeSettings.model_construct(
        backend="upstream",
        upstream_url="http://127.0.0.1:0/v1",
        upstream_model="model",
        trusted_relayer=placeholder,
        operator_address=placeholder,
    )
    backend = UpstreamBackend.from_settings(settings)
    try:
        schema = create_app(settings, backend).openapi()
    finally:
        asyncio.run(backend.aclose())
    write_schema(schema, output)


def _settings_problems(exc: ValidationError) -> str:
    """One line per bad or missing setting, naming its option and environment variable."""
    lines = ["the node's settings are incomplete or wrong:"]
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        where = f" (option --{field.replace('_', '-')} or BME_NODE_{field.upper()})" if field else ""
        lines.append(f"  {field or 'settings'}: {message}{where}")
    return "\n".join(lines)


def bench_node_command(
    json_output: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Embedded model speed through the node (single stream, 4 concurrent) and the node's overhead ratio."""
    from bme.node.bench import run_node_bench

    result = run_node_bench()
    if json_output:
        typer.echo(json.dumps(result, indent=2))
        return
    single, concurrent, overhead = result["single_stream"], result["concurrent"], result["overhead"]
    table = Table(title=f"bme bench node: {result['model']} on {result['machine']['cpus']} CPUs")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("single stream tokens/s", f"{single['tokens_per_s']:.1f}")
    table.add_row("single stream decode tokens/s", f"{single['decode_tokens_per_s']:.1f}")
    table.add_row("single stream TTFT (node)", f"{single['ttft_s'] * 1000:.1f} ms")
    table.add_row("TTFT (llama-cpp-python direct)", f"{single['direct_ttft_s'] * 1000:.1f} ms")
    table.add_row(
        f"{concurrent['requests']} concurrent: aggregate tokens/s",
        f"{concurrent['aggregate_tokens_per_s']:.1f}",
    )
    table.add_row(
        f"{concurrent['requests']} concurrent: TTFT median", f"{concurrent['ttft_s']['median'] * 1000:.1f} ms"
    )
    table.add_row(
        f"{concurrent['requests']} concurrent: TTFT max", f"{concurrent['ttft_s']['max'] * 1000:.1f} ms"
    )
    table.add_row(
        f"overhead node/direct ({overhead['completion_tokens']} tokens)",
        f"{overhead['ratio']:.3f} ({overhead['node_median_s']:.3f}s / {overhead['direct_median_s']:.3f}s)",
    )
    console.print(table)
