"""The audit's rule for inline suppressions: each names its detector and says why."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

_PATH = Path(__file__).resolve().parents[2] / "tools" / "slither_audit.py"
_spec = importlib.util.spec_from_file_location("slither_audit", _PATH)
assert _spec is not None and _spec.loader is not None
audit = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = audit  # dataclasses look their module up there
_spec.loader.exec_module(audit)


def _write(tmp_path: Path, body: str) -> Path:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "A.sol").write_text(body)
    return contracts


def test_a_suppression_with_a_reason_is_read_with_it(tmp_path: Path) -> None:
    contracts = _write(
        tmp_path,
        "contract A {\n"
        "    // slither-disable-next-line reentrancy-no-eth,unused-return -- CMP makes no call back\n"
        "    function f() external {}\n"
        "}\n",
    )
    [found] = audit.suppressions(contracts)
    assert (found.path, found.line) == ("contracts/A.sol", 2)
    assert found.detectors == "reentrancy-no-eth,unused-return"
    assert found.reason == "CMP makes no call back"


@pytest.mark.parametrize(
    "comment",
    [
        "// slither-disable-next-line reentrancy-no-eth",
        "// slither-disable-next-line reentrancy-no-eth -- ok",
        "// slither-disable-next-line reentrancy-no-eth because it is fine",
        "// slither-disable-start uninitialized-local",
    ],
)
def test_a_suppression_without_a_reason_is_flagged(tmp_path: Path, comment: str) -> None:
    contracts = _write(tmp_path, f"contract A {{\n    {comment}\n    function f() external {{}}\n}}\n")
    [found] = audit.suppressions(contracts)
    assert found.reason is None


def test_only_high_and_medium_results_block() -> None:
    report = {
        "results": {
            "detectors": [
                {"impact": "High", "check": "a"},
                {"impact": "Medium", "check": "b"},
                {"impact": "Low", "check": "c"},
                {"impact": "Informational", "check": "d"},
            ]
        }
    }
    assert [r["check"] for r in audit.blocking_results(report)] == ["a", "b"]


def test_the_compilers_caches_are_not_ours_to_explain(tmp_path: Path) -> None:
    contracts = _write(tmp_path, "contract A {}\n")
    cached = contracts / ".cache" / "openzeppelin"
    cached.mkdir(parents=True)
    (cached / "B.sol").write_text("// slither-disable-next-line reentrancy-eth\ncontract B {}\n")
    assert audit.suppressions(contracts) == []
