"""Every success response of the relayer's and the node's APIs declares its body's shape in their OpenAPI
schemas: no 2xx response without a schema, with an empty one, or with a free-form object (a `dict[str, Any]`)
at any depth of its schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from typer.testing import CliRunner

from bme.cli.main import app

pytestmark = pytest.mark.pure


class Loose(BaseModel):
    """A model with a free-form field, for the check's own test."""

    name: str
    extra: dict[str, Any]


def schema_of(command: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, [command, "openapi"])
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def undescribed(schema: dict[str, Any], components: dict[str, Any], seen: set[str]) -> list[str]:
    """Where `schema` says nothing of a value's shape: an empty schema, or an object whose keys and values are
    free; each as a path of the schema's parts (empty when the shape is declared throughout)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        if name in seen:
            return []
        return [
            f"{name}.{p}" if p else name for p in undescribed(components[name], components, seen | {name})
        ]
    for union in ("anyOf", "oneOf", "allOf"):
        if union in schema:
            return [p for member in schema[union] for p in undescribed(member, components, seen)]
    if not ({"type", "const", "enum"} & set(schema)):
        return [""]
    kind = schema.get("type")
    if kind == "array":
        return [f"[].{p}".rstrip(".") for p in undescribed(schema.get("items", {}), components, seen)]
    if kind != "object":
        return []
    found = [
        f"{key}.{p}".rstrip(".")
        for key, value in schema.get("properties", {}).items()
        for p in undescribed(value, components, seen)
    ]
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and values:
        found += [f"*.{p}".rstrip(".") for p in undescribed(values, components, seen)]
    elif not schema.get("properties"):
        found.append("")  # an object with free keys and values
    return found


def undeclared_successes(openapi: dict[str, Any]) -> list[str]:
    """Every 2xx response (route, status, media type and where) whose body's shape is not declared."""
    components = openapi.get("components", {}).get("schemas", {})
    problems = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                route = f"{method.upper()} {path} {status}"
                content = response.get("content") or {}
                if not content:
                    problems.append(f"{route}: no content")
                for media, body in content.items():
                    if "schema" not in body:
                        problems.append(f"{route} {media}: no schema")
                        continue
                    problems += [
                        f"{route} {media}: {where or 'the body'} is free-form"
                        for where in undescribed(body["schema"], components, set())
                    ]
    return problems


@pytest.mark.parametrize("command", ["relayer", "operator"])
def test_every_success_response_declares_its_shape(command: str) -> None:
    problems = undeclared_successes(schema_of(command))
    assert not problems, "responses without a declared shape:\n" + "\n".join(problems)


def test_the_check_finds_free_form_bodies() -> None:
    """The check above can fail: a route returning `dict[str, Any]`, a list of them, or a model with such a
    field is reported, and one without a declared response at all."""
    probe = FastAPI()

    @probe.get("/dict")
    def as_dict() -> dict[str, Any]:
        return {}

    @probe.get("/list")
    def as_list() -> list[dict[str, Any]]:
        return []

    @probe.get("/model")
    def as_model() -> Loose:
        return Loose(name="", extra={})

    @probe.get("/bare")
    def bare():  # type: ignore[no-untyped-def]
        return {}

    problems = undeclared_successes(probe.openapi())
    assert problems == [
        "GET /dict 200 application/json: the body is free-form",
        "GET /list 200 application/json: [] is free-form",
        "GET /model 200 application/json: Loose.extra is free-form",
        "GET /bare 200 application/json: the body is free-form",
    ]
