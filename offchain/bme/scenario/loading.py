"""Reading scenario files: YAML (duplicate keys refused), validation into a `Scenario`, and one clear message
per mistake, naming its place in the file (with the keys allowed there for an unknown key)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from bme.errors import ConfigError
from bme.scenario.spec import Scenario


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing duplicate keys (PyYAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(f"line {line}: the key {key!r} appears twice")
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_raw(path: Path) -> dict[str, Any]:
    """The scenario file as a dictionary, before validation."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the scenario file {path}: {exc.strerror or exc}") from None
    return parse_raw(text, str(path))


def parse_raw(text: str, where: str = "scenario") -> dict[str, Any]:
    """A scenario's YAML text as a dictionary, before validation."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a scenario file must be a mapping of keys to values")
    return data


def validate(raw: Mapping[str, Any], base_dir: Path, where: str = "scenario") -> Scenario:
    """The scenario `raw` describes, or ConfigError listing every mistake."""
    try:
        return Scenario.model_validate(dict(raw), context={"base_dir": str(base_dir)})
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors(include_url=False)]
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None


def load_scenario(path: Path | str) -> Scenario:
    """Reads and validates a scenario file."""
    p = Path(path)
    return validate(read_raw(p), p.parent, str(p))


def _describe(error: Mapping[str, Any]) -> str:
    # Pydantic names its validator functions and union branches in locations: keep the file's keys only.
    loc = tuple(part for part in error.get("loc", ()) if not (isinstance(part, str) and "[" in part))
    where = ".".join(str(part) for part in loc) or "(top level)"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
        return f"{where}: unknown key{hint}"
    if kind == "missing":
        return f"{where}: missing"
    if kind == "union_tag_not_found":
        return f"{where}: missing key 'kind' (one of: constant, points, gbm, csv)"
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if kind in {"int_type", "float_type", "bool_type", "string_type", "dict_type", "list_type"}:
        message = f"{message} (got {type(error.get('input')).__name__} {error.get('input')!r})"
    return f"{where}: {message}"


def _allowed_keys(loc: Sequence[Any]) -> list[str]:
    """The keys the schema allows at `loc` (a validation error's location), or [] when unknown."""
    current: Any = Scenario
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return []
    current = _unwrap(current, None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(tp: Any, part: Any) -> Any:
    """One step into the annotation `tp` along location element `part` (None: strip wrappers only)."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, type(int | str)):
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            tagged = [
                m
                for m in models
                if "kind" in m.model_fields and part in get_args(m.model_fields["kind"].annotation)
            ]
            if tagged:
                return tagged[0]
            if len(members) == 1 or models:
                tp = models[0] if models else members[0]
            else:
                return None
        else:
            break
    if part is None:
        return tp
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin = get_origin(tp)
    if origin in (list, tuple) and isinstance(part, int):
        return get_args(tp)[0]
    if origin is dict:
        return get_args(tp)[1]
    return None
