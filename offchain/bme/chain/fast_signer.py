"""Fast signing of legacy (EIP-155) transactions with pre-filled nonce, gas and gas price.

eth-account signs a transaction in about a millisecond; a scenario replay signs tens of thousands, so this
module encodes the fixed nine-field RLP list by hand and signs with coincurve: several times faster, byte for
byte the same raw transaction (checked against eth-account in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from eth_utils.address import to_checksum_address

from bme.economics.keccak import keccak256
from bme.signatures import Signer


def _rlp_bytes(b: bytes) -> bytes:
    n = len(b)
    if n == 1 and b[0] < 0x80:
        return b
    if n < 56:
        return bytes((0x80 + n,)) + b
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(size),)) + size + b


def _rlp_int(i: int) -> bytes:
    if i == 0:
        return b"\x80"
    return _rlp_bytes(i.to_bytes((i.bit_length() + 7) // 8, "big"))


def _rlp_list(items: list[bytes]) -> bytes:
    payload = b"".join(items)
    n = len(payload)
    if n < 56:
        return bytes((0xC0 + n,)) + payload
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(size),)) + size + payload


@dataclass(frozen=True)
class Key:
    """A private key and its address."""

    secret: bytes

    @cached_property
    def _signer(self) -> Signer:
        return Signer(self.secret)

    @cached_property
    def address(self) -> str:
        """The checksummed address."""
        return to_checksum_address(keccak256(self._signer.public_key)[12:])

    @classmethod
    def from_hex(cls, key: str) -> Key:
        return cls(bytes.fromhex(key.removeprefix("0x")))

    def sign_legacy(
        self, nonce: int, gas_price: int, gas: int, to: bytes, value: int, data: bytes, chain_id: int
    ) -> bytes:
        """The raw signed EIP-155 transaction."""
        head = [_rlp_int(nonce), _rlp_int(gas_price), _rlp_int(gas), _rlp_bytes(to), _rlp_int(value)]
        body = _rlp_bytes(data)
        unsigned = _rlp_list([*head, body, _rlp_int(chain_id), b"\x80", b"\x80"])
        sig = self._signer.recoverable(keccak256(unsigned))
        v = sig[64] + 35 + 2 * chain_id
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:64], "big")
        return _rlp_list([*head, body, _rlp_int(v), _rlp_int(r), _rlp_int(s)])
