"""Keccak-256, from safe-pysha3's C implementation when installed (several times faster than pycryptodome's,
which matters on the hot paths of scenario replays), else from eth-hash."""

from __future__ import annotations

from collections.abc import Callable

keccak256: Callable[[bytes], bytes]

try:
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        """The Keccak-256 digest of `data`."""
        return bytes(_keccak_256(data).digest())

except ImportError:  # pragma: no cover - depends on the environment
    pass
