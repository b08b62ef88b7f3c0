"""Keccak-256, from safe-pysha3's C implementation when installed (several times faster than pycryptodome's,
which matters on the hot paths of scenario replays), else from eth-hash (which web3 depends on)."""

from __future__ import annotations

from collections.abc import Callable

keccak256: Callable[[bytes], bytes]

try:
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        """The Keccak-256 digest of `data`."""
        return bytes(_keccak_256(data).digest())

except ImportError:  # safe-pysha3 has no wheel for every platform and may fail to build
    from eth_hash.auto import keccak as _eth_hash_keccak

    def keccak256(data: bytes) -> bytes:
        """The Keccak-256 digest of `data`."""
        return bytes(_eth_hash_keccak(data))
