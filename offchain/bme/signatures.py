"""secp256k1 signatures on the hot paths, straight through coincurve (libsecp256k1).

eth-account's `sign_message` and `_recover_hash` give the same results at four to six times the CPU cost
(validation layers and pure-Python encoding around the same library); the relayer signs one credential and
checks one reveal per job, so it calls these instead. Signatures are Ethereum's 65 bytes: r, s, v (27/28).
"""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def personal_digest(data: bytes) -> bytes:
    """The EIP-191 (`personal_sign`) digest of `data`, as `encode_defunct` + hashing computes it."""
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


class Signer:
    """A private key that signs 32-byte digests."""

    def __init__(self, private_key: bytes) -> None:
        self._key = PrivateKey(private_key)

    @property
    def public_key(self) -> bytes:
        """The uncompressed public key's 64 bytes (x, y)."""
        return bytes(self._key.public_key.format(compressed=False)[1:])

    def recoverable(self, digest: bytes) -> bytes:
        """r, s and the recovery id (0 or 1): 65 bytes."""
        return bytes(self._key.sign_recoverable(digest, hasher=None))

    def sign(self, digest: bytes) -> bytes:
        """r, s and v (27 or 28), as Ethereum's personal and typed-data signatures carry them."""
        sig = self.recoverable(digest)
        return sig[:64] + bytes([sig[64] + 27])


def recover_address(digest: bytes, signature: bytes) -> str:
    """The checksummed address that made `signature` (65 bytes, v 27/28 or 0/1) over `digest`; ValueError
    for bytes that are no valid signature."""
    if len(signature) != 65:
        raise ValueError("a signature is 65 bytes")
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    if v not in (0, 1) or not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        raise ValueError("r, s or v is out of range")
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except Exception as exc:  # coincurve raises a bare Exception when no key recovers
        raise ValueError(f"no public key recovers from it ({exc})") from None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[12:])
