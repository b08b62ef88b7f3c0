"""No selector, event topic or struct layout is typed by hand outside `bme.chain`, which derives them all from
the compiled ABIs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bme

pytestmark = pytest.mark.pure

PACKAGE = Path(bme.__file__).parent

#: A function or event signature hashed by hand: `keccak(text="jobOf(uint256)")` (an EIP-712 type string
#: names its members, `Reveal(uint256 jobId,...)`, and is not one).
HASHED_SIGNATURE = re.compile(r"""keccak\(\s*(?:text\s*=\s*)?f?(["'])[A-Za-z_]\w*\([^"'\s]*\)\1""")
#: eth-utils' helpers that hash a signature into a selector or an event topic.
SIGNATURE_HELPERS = re.compile(r"\b(function_signature_to_4byte_selector|event_signature_to_log_topic)\(")
#: A struct layout as an ABI type string: `"(uint256,address,uint32)"`.
STRUCT_LAYOUT = re.compile(r"""["']\((?:u?int\d*|address|bool|bytes\d*|string)(?:\[\d*\])?[,)]""")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def package_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def hand_typed(text: str) -> list[str]:
    """The hand-typed selectors, topics and struct layouts in a module's source."""
    found = []
    for pattern in (HASHED_SIGNATURE, SIGNATURE_HELPERS, STRUCT_LAYOUT):
        found += [m.group(0) for m in pattern.finditer(text)]
    return found


def test_the_patterns_find_hand_typed_signatures() -> None:
    assert hand_typed('_JOB_OF = keccak(text="jobOf(uint256)")[:4]')
    assert hand_typed("keccak(text='settle((uint256,address,uint32,uint32,bytes32)[])')")
    assert hand_typed('topic = function_signature_to_4byte_selector("Error(string)")')
    assert hand_typed('decode(["(uint128,uint48,uint48,uint8,bool,bool)"], raw)')
    assert not hand_typed('keccak(text="Reveal(uint256 jobId,bytes32 specHash)")')
    assert not hand_typed('keccak(text="MINTER_ROLE")')


def test_no_selector_or_struct_layout_is_typed_by_hand_outside_the_chain_layer() -> None:
    wrong = []
    for path in modules():
        if package_of(path) == "chain":
            continue
        wrong += [f"{path.relative_to(PACKAGE)}: {found}" for found in hand_typed(path.read_text())]
    assert not wrong, wrong
