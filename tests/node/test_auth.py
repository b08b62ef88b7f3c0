"""The relayer credential scheme, both sides: `sign_request`/`issue_token` and `RelayerVerifier`."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from bme.credential import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    issue_token,
    request_message,
    sign_request,
)
from bme.node.auth import RelayerVerifier, recover_signer
from bme.node.errors import Unauthorized

pytestmark = pytest.mark.pure

PATH = "/v1/chat/completions"
BODY = b'{"model":"m","messages":[]}'
NOW = 1_800_000_000


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(relayer: LocalAccount, operator: LocalAccount, clock: Clock) -> RelayerVerifier:
    return RelayerVerifier(
        trusted_relayer=relayer.address,
        operator=operator.address,
        max_skew_s=30,
        token_max_ttl_s=600,
        clock=clock,
    )


def headers_for(
    account: LocalAccount, operator: str, *, body: bytes = BODY, **kwargs: object
) -> dict[str, str]:
    return sign_request(account, "POST", PATH, body, operator=operator, timestamp=NOW, **kwargs)  # type: ignore[arg-type]


def lower(headers: dict[str, str]) -> dict[str, str]:
    """Starlette and httpx look headers up case-insensitively; a plain dict of lower-case names does not."""
    return {k.lower(): v for k, v in headers.items()} | headers


def test_signed_request_verifies_to_trusted_relayer(verifier: RelayerVerifier, relayer: LocalAccount) -> None:
    headers = headers_for(relayer, verifier.operator)
    assert set(headers) == {HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE}
    assert verifier.verify("POST", PATH, headers, BODY) == relayer.address


def test_signed_message_layout_is_the_documented_one(operator: LocalAccount) -> None:
    text = request_message(
        operator=operator.address, method="post", path=PATH, timestamp=12, nonce="n" * 16, body=BODY
    )
    assert text.split("\n") == [
        "bme-node-request/v1",
        operator.address.lower(),
        "POST",
        PATH,
        "12",
        "n" * 16,
        hashlib.sha256(BODY).hexdigest(),
    ]


def test_recover_signer_agrees_with_eth_account(relayer: LocalAccount) -> None:
    signature = relayer.sign_message(encode_defunct(text="hello\nworld")).signature
    assert recover_signer("hello\nworld", bytes(signature)) == relayer.address
    assert (
        Account.recover_message(encode_defunct(text="hello\nworld"), signature=signature) == relayer.address
    )
    assert recover_signer("hello world", bytes(signature)) != relayer.address


def test_missing_credential_is_refused(verifier: RelayerVerifier) -> None:
    with pytest.raises(Unauthorized, match="Missing relayer credential"):
        verifier.verify("POST", PATH, {}, BODY)


def test_incomplete_signature_headers_are_refused(verifier: RelayerVerifier, relayer: LocalAccount) -> None:
    headers = headers_for(relayer, verifier.operator)
    del headers[HEADER_NONCE]
    with pytest.raises(Unauthorized, match="needs"):
        verifier.verify("POST", PATH, headers, BODY)


def test_signature_of_another_key_is_refused(verifier: RelayerVerifier, stranger: LocalAccount) -> None:
    with pytest.raises(Unauthorized, match="not signed by the trusted relayer"):
        verifier.verify("POST", PATH, headers_for(stranger, verifier.operator), BODY)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", PATH, BODY + b" "), ("PUT", PATH, BODY), ("POST", "/v1/completions", BODY)],
    ids=["body", "method", "path"],
)
def test_signature_over_another_request_is_refused(
    verifier: RelayerVerifier, relayer: LocalAccount, method: str, path: str, body: bytes
) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(method, path, headers_for(relayer, verifier.operator), body)


def test_signature_for_another_node_is_refused(verifier: RelayerVerifier, relayer: LocalAccount) -> None:
    other_operator = Account.from_key(b"\x44" * 32).address
    with pytest.raises(Unauthorized):
        verifier.verify("POST", PATH, headers_for(relayer, other_operator), BODY)


@pytest.mark.parametrize("offset", [-31, 31])
def test_stale_or_future_timestamp_is_refused(
    verifier: RelayerVerifier, relayer: LocalAccount, clock: Clock, offset: int
) -> None:
    headers = headers_for(relayer, verifier.operator)
    clock.now = NOW - offset
    with pytest.raises(Unauthorized, match="Stale credential"):
        verifier.verify("POST", PATH, headers, BODY)
    clock.now = NOW - offset + (1 if offset > 0 else -1)  # back inside the window: accepted
    assert verifier.verify("POST", PATH, headers, BODY) == verifier.trusted_relayer


def test_replayed_request_is_refused(verifier: RelayerVerifier, relayer: LocalAccount, clock: Clock) -> None:
    headers = headers_for(relayer, verifier.operator)
    verifier.verify("POST", PATH, headers, BODY)
    clock.now += 5
    with pytest.raises(Unauthorized, match="Replayed"):
        verifier.verify("POST", PATH, headers, BODY)
    # Once the window has passed the nonce is forgotten, and the timestamp alone refuses it.
    clock.now = NOW + 60
    with pytest.raises(Unauthorized, match="Stale"):
        verifier.verify("POST", PATH, headers, BODY)


def test_failed_verification_does_not_spend_the_nonce(
    verifier: RelayerVerifier, relayer: LocalAccount, stranger: LocalAccount
) -> None:
    forged = headers_for(stranger, verifier.operator, nonce="a" * 32)
    with pytest.raises(Unauthorized):
        verifier.verify("POST", PATH, forged, BODY)
    assert verifier.verify("POST", PATH, headers_for(relayer, verifier.operator, nonce="a" * 32), BODY)


def test_high_s_signature_is_refused(verifier: RelayerVerifier, relayer: LocalAccount) -> None:
    headers = headers_for(relayer, verifier.operator)
    sig = bytes.fromhex(headers[HEADER_SIGNATURE][2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    flipped = sig[:32] + high_s + bytes([55 - sig[64]])  # the malleable twin: same signer, other v
    headers[HEADER_SIGNATURE] = "0x" + flipped.hex()
    with pytest.raises(Unauthorized, match="high s"):
        verifier.verify("POST", PATH, headers, BODY)


@pytest.mark.parametrize(
    ("header", "value"),
    [(HEADER_TIMESTAMP, "soon"), (HEADER_NONCE, "short"), (HEADER_SIGNATURE, "0x1234")],
)
def test_malformed_headers_are_refused(
    verifier: RelayerVerifier, relayer: LocalAccount, header: str, value: str
) -> None:
    headers = headers_for(relayer, verifier.operator) | {header: value}
    with pytest.raises(Unauthorized):
        verifier.verify("POST", PATH, headers, BODY)


def test_bearer_token_is_accepted_until_expiry(
    verifier: RelayerVerifier, relayer: LocalAccount, clock: Clock
) -> None:
    token = issue_token(relayer, operator=verifier.operator, ttl_s=300, now=NOW)
    assert verifier.verify("POST", PATH, lower({"Authorization": f"Bearer {token}"}), b"") == relayer.address
    clock.now = NOW + 299
    assert verifier.verify("POST", PATH, lower({"Authorization": f"Bearer {token}"}), b"") == relayer.address
    clock.now = NOW + 300
    with pytest.raises(Unauthorized, match="Expired"):
        verifier.verify("POST", PATH, lower({"Authorization": f"Bearer {token}"}), b"")


@pytest.mark.parametrize(
    "make_token",
    [
        lambda relayer, stranger, operator: issue_token(stranger, operator=operator, now=NOW),
        lambda relayer, stranger, operator: issue_token(relayer, operator=stranger.address, now=NOW),
        lambda relayer, stranger, operator: issue_token(relayer, operator=operator, ttl_s=601, now=NOW),
        lambda relayer, stranger, operator: issue_token(relayer, operator=operator, ttl_s=-1, now=NOW),
        lambda relayer, stranger, operator: "sk-not-a-relayer-token",
        lambda relayer, stranger, operator: issue_token(relayer, operator=operator, now=NOW).replace(
            "bme1", "bme2"
        ),
    ],
    ids=["other-signer", "other-node", "too-long", "expired", "foreign-key", "bad-prefix"],
)
def test_bad_bearer_tokens_are_refused(
    verifier: RelayerVerifier, relayer: LocalAccount, stranger: LocalAccount, make_token: object
) -> None:
    token = make_token(relayer, stranger, verifier.operator)  # type: ignore[operator]
    with pytest.raises(Unauthorized):
        verifier.verify("POST", PATH, lower({"Authorization": f"Bearer {token}"}), b"")


def test_tokens_can_be_disabled(relayer: LocalAccount, operator: LocalAccount, clock: Clock) -> None:
    strict = RelayerVerifier(
        trusted_relayer=relayer.address, operator=operator.address, token_max_ttl_s=0, clock=clock
    )
    token = issue_token(relayer, operator=operator.address, ttl_s=60, now=NOW)
    with pytest.raises(Unauthorized, match="does not accept bearer tokens"):
        strict.verify("POST", PATH, lower({"Authorization": f"Bearer {token}"}), b"")
