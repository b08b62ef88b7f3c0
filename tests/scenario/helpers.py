"""Small scenarios for the tests: a few short epochs, a handful of users and operators."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from bme.scenario.loading import validate
from bme.scenario.spec import Scenario

SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"

SMALL: dict[str, Any] = {
    "name": "small",
    "description": "a few short epochs",
    "seed": 3,
    "duration": "10m",
    "epoch_length": "2m",
    "price": {"kind": "constant", "initial": 1.0},
    "models": [
        {"id": 1, "name": "small", "input_price": 0.5, "output_price": 1.5},
        {"id": 2, "name": "large", "input_price": 3, "output_price": 15},
    ],
    "demand": {
        "groups": [
            {
                "name": "apps",
                "users": 4,
                "jobs_per_epoch": 6,
                "models": {1: 3, 2: 1},
                "input_tokens": [20_000, 120_000],
                "output_tokens": [2_000, 8_000],
                "cmp_per_user": 500,
                "topup_credits": 10,
            }
        ]
    },
    "operators": [{"name": "pool", "count": 2, "stake": 1000, "capacity": 5, "redeem_every": 2}],
    "protocol": {
        "mint_limit": 1000,
        "emission": {"hard_cap": 1000, "segments": [{"epochs": 100, "amount_per_epoch": 5}]},
    },
    "relayer": {"job_ttl": "1m"},
}


def small(**changes: Any) -> dict[str, Any]:
    """A copy of SMALL with top-level keys replaced."""
    out = copy.deepcopy(SMALL)
    out.update(copy.deepcopy(changes))
    return out


def scenario(raw: dict[str, Any], base: Path = SCENARIOS_DIR) -> Scenario:
    return validate(raw, base, "test scenario")


def write(tmp: Path, raw: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
