"""Overrides of a scenario's keys by dotted path (`protocol.mint_spread_bps`, `demand.groups.0.users`), and
command-line values read as YAML: what sweeps are made of."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from bme.errors import ConfigError


def split_values(text: str) -> list[str]:
    """`a,b,[c,d]` as `['a', 'b', '[c,d]']`: commas inside brackets or braces do not split."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_value(text: str) -> Any:
    """A command-line value as YAML reads it: `0.5` a number, `1d` a string, `[1, 2]` a list."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"cannot read the value {text!r}") from None


def with_override(raw: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with the dotted `path` (list items by index) set to `value`."""
    out = copy.deepcopy(dict(raw))
    parts = path.split(".")
    if not all(parts):
        raise ConfigError(f"--set {path}: an empty key")
    node: Any = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {path}: {where} is not an item of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            key: Any = int(part) if part.isdigit() and int(part) in node else part
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise ConfigError(f"--set {path}: {'.'.join(parts[:i])} is a value, not a section")
    return out
