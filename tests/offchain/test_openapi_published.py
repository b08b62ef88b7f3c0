"""The relayer API's published OpenAPI schema (docs/relayer-openapi.json) is the one the code serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bme.cli.main import app

pytestmark = pytest.mark.pure

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "relayer-openapi.json"


def test_the_published_schema_is_current() -> None:
    result = CliRunner().invoke(app, ["relayer", "openapi"])
    assert result.exit_code == 0, result.output
    served = json.loads(result.stdout)
    assert served == json.loads(PUBLISHED.read_text()), (
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
