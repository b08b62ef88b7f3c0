"""The published OpenAPI schemas (docs/relayer-openapi.json, docs/node-openapi.json) are the ones the code
makes: the relayer serves its own at /openapi.json; the node's is published only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bme.cli.main import app

pytestmark = pytest.mark.pure

DOCS = Path(__file__).resolve().parents[2] / "docs"


def generated(command: str) -> Any:
    """The schema `bme <command> openapi` prints."""
    result = CliRunner().invoke(app, [command, "openapi"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_published_relayer_schema_is_current() -> None:
    served = generated("relayer")
    assert served == json.loads((DOCS / "relayer-openapi.json").read_text()), (
        "run `bme relayer openapi -o docs/relayer-openapi.json`"
    )
    for path in (
        "/v1/jobs/{job_id}/reveal",
        "/v1/jobs/{job_id}",
        "/v1/quote",
        "/v1/operators",
        "/v1/protocol",
    ):
        assert path in served["paths"]


def test_the_published_node_schema_is_current() -> None:
    schema = generated("operator")
    assert schema == json.loads((DOCS / "node-openapi.json").read_text()), (
        "run `bme operator openapi -o docs/node-openapi.json`"
    )
    for path in ("/v1/chat/completions", "/v1/models", "/v1/models/{model_id}", "/healthz", "/readyz"):
        assert path in schema["paths"]
