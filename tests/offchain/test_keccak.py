"""Keccak-256 off-chain: safe-pysha3's C code when installed, else eth-hash's, with equal digests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bme.economics.keccak import keccak256

pytestmark = pytest.mark.pure

# Keccak-256 (not SHA3-256) test vectors.
VECTORS = {
    b"": "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
    b"abc": "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
}


@pytest.mark.parametrize("data", list(VECTORS))
def test_digest_matches_the_vectors(data: bytes) -> None:
    assert keccak256(data).hex() == VECTORS[data]


def test_works_without_safe_pysha3() -> None:
    """A machine where safe-pysha3 did not install (no wheel, no compiler) falls back to eth-hash."""
    code = (
        "import sys; sys.modules['sha3'] = None\n"  # makes `import sha3` raise ImportError
        "from bme.economics.keccak import keccak256\n"
        "print(keccak256(b'abc').hex(), keccak256(b'').hex())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [VECTORS[b"abc"], VECTORS[b""]]
