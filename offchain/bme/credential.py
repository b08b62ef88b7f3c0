"""The relayer's credential to an operator node, and the job's name in a call: the wire format that the
relayer (which signs) and the node (which checks, in `bme.node.auth`) share, so neither imports the other.

Two forms, both signed by the relayer's key with EIP-191 (`personal_sign`) and both naming the node's
operator address, so that a credential made for one node is worthless at another:

1. A per-request signature (what the relayer uses). Headers:

   - ``X-BME-Timestamp``: the unix time in seconds at signing;
   - ``X-BME-Nonce``: 16 to 64 characters of ``[A-Za-z0-9_-]``, never reused;
   - ``X-BME-Signature``: the 65-byte signature, 0x-prefixed hex.

   The signed text is seven lines joined by ``\\n`` (no trailing newline)::

       bme-node-request/v1
       <operator address, lower-case 0x hex>
       <HTTP method, upper case>
       <path, with ?query if any>
       <timestamp>
       <nonce>
       <sha256 of the exact body bytes, lower-case hex>

   The node accepts it when the timestamp is within ``auth_max_skew_s`` of its clock, the nonce has not
   been seen in that window, and the recovered signer is the trusted relayer.

2. A bearer token, for OpenAI-compatible clients that can only send an API key (``Authorization: Bearer``):
   ``bme1.<expiry unix seconds>.<signature hex>`` where the signature is over the three lines
   ``bme-node-token/v1``, the operator address (lower-case) and the expiry. The node accepts it until its
   expiry, if the expiry is at most ``token_max_ttl_s`` away. Such a token is a capability until it
   expires: it does not bind the body and can be replayed, so the relayer keeps per-request signatures for
   paid jobs and gives tokens short lives.

A paid job's call names the job in OpenAI's `user` field, ``bme-job:<job id>`` (`JOB_PREFIX`), covered by the
signature with the rest of the body: the node's journal answers a repeated call from its record.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from bme.signatures import Signer, personal_digest

REQUEST_DOMAIN = "bme-node-request/v1"
TOKEN_DOMAIN = "bme-node-token/v1"
TOKEN_PREFIX = "bme1"

HEADER_TIMESTAMP = "X-BME-Timestamp"
HEADER_NONCE = "X-BME-Nonce"
HEADER_SIGNATURE = "X-BME-Signature"

#: How a paid job's call names the job in OpenAI's `user` field: the prefix, then the job id.
JOB_PREFIX = "bme-job:"


def request_message(*, operator: str, method: str, path: str, timestamp: int, nonce: str, body: bytes) -> str:
    """The text a per-request signature covers (see the module docstring for the layout)."""
    return "\n".join(
        (
            REQUEST_DOMAIN,
            operator.lower(),
            method.upper(),
            path,
            str(timestamp),
            nonce,
            hashlib.sha256(body).hexdigest(),
        )
    )


def token_message(*, operator: str, expiry: int) -> str:
    """The text a bearer token's signature covers."""
    return "\n".join((TOKEN_DOMAIN, operator.lower(), str(expiry)))


def sign_request(
    account: LocalAccount,
    method: str,
    path: str,
    body: bytes,
    *,
    operator: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that authenticate one call of the relayer to the node of `operator`.

    `path` is the request target as sent (e.g. ``/v1/chat/completions``), `body` the exact bytes sent.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    nonce_ = secrets.token_hex(16) if nonce is None else nonce
    text = request_message(operator=operator, method=method, path=path, timestamp=ts, nonce=nonce_, body=body)
    signature = _signer(account).sign(personal_digest(text.encode("utf-8")))
    return {HEADER_TIMESTAMP: str(ts), HEADER_NONCE: nonce_, HEADER_SIGNATURE: "0x" + signature.hex()}


_SIGNERS: dict[str, Signer] = {}


def _signer(account: LocalAccount) -> Signer:
    signer = _SIGNERS.get(account.address)
    if signer is None:
        signer = _SIGNERS[account.address] = Signer(bytes(account.key))
    return signer


def issue_token(account: LocalAccount, *, operator: str, ttl_s: int = 300, now: float | None = None) -> str:
    """A bearer token (an OpenAI client's `api_key`) for the node of `operator`, valid for `ttl_s` seconds."""
    expiry = int(time.time() if now is None else now) + ttl_s
    signed = account.sign_message(encode_defunct(text=token_message(operator=operator, expiry=expiry)))
    return f"{TOKEN_PREFIX}.{expiry}.{bytes(signed.signature).hex()}"
