"""Link tokens: a token verifies only exactly as it was issued."""

from __future__ import annotations

import hmac
import pickle
import string
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import DigestError
from digest.tokens import TokenError, TokenSigner, _b64

SIGNER = TokenSigner("a-test-secret-that-is-long-enough")
DAY = date(2026, 3, 11)
#: Every character a token may hold, plus the ones lenient base64 decoders accept.
ALPHABET = string.ascii_letters + string.digits + "-_+/=."


def test_a_signed_token_verifies_to_what_was_signed() -> None:
    token = SIGNER.sign("ada", "2603.00001", "more", DAY)
    verified = SIGNER.verify(token)
    assert (verified.reader, verified.item_id, verified.action, verified.day) == (
        "ada",
        "2603.00001",
        "more",
        DAY,
    )


@pytest.mark.parametrize("action", ["click", "more", "less", "unsubscribe"])
def test_every_single_character_edit_of_a_token_is_refused(action: str) -> None:
    # Lenient base64 lets several strings decode to the same bytes (the last character's
    # spare bits, '+' for '-', padding): each of those edits must fail all the same.
    token = SIGNER.sign("ada", "item-1", action, DAY)
    for at in range(len(token)):
        for replacement in ALPHABET:
            if replacement == token[at]:
                continue
            edited = token[:at] + replacement + token[at + 1 :]
            with pytest.raises(TokenError):
                SIGNER.verify(edited)


def test_padding_or_standard_alphabet_spellings_are_refused() -> None:
    token = SIGNER.sign("ada", "item-1", "click", DAY)
    payload, signature = token.split(".")
    for variant in (
        f"{payload}==.{signature}",
        f"{payload}.{signature}==",
        f"{payload}.{signature}=",
        token.replace("-", "+").replace("_", "/"),
    ):
        if variant != token:
            with pytest.raises(TokenError):
                SIGNER.verify(variant)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=120))
def test_arbitrary_strings_never_verify(text: str) -> None:
    with pytest.raises(TokenError):
        SIGNER.verify(text)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(DigestError, match="at least 16"):
        TokenSigner("short")


@given(st.text(min_size=16, max_size=200), st.binary(max_size=300))
def test_the_signature_is_hmac_sha256_of_the_payload_under_the_salted_secret(
    secret: str, payload: bytes
) -> None:
    """The prepared SHA-256 states give exactly HMAC-SHA256, short and long keys alike
    (a key longer than a block is hashed first): links issued earlier keep verifying."""
    key = b"digest-link-v2|" + secret.encode("utf-8")
    expected = hmac.digest(key, payload, "sha256")[:16]
    assert TokenSigner(secret)._mac(payload) == expected


def test_a_token_issued_with_the_hmac_module_still_verifies() -> None:
    """A token as the signer wrote it before (with `hmac.new`), byte for byte."""
    payload = b"ada\x1fitem-1\x1fpick\x1f2026-03-11"
    key = b"digest-link-v2|a-test-secret-that-is-long-enough"
    mac = hmac.new(key, payload, "sha256").digest()[:16]
    token = f"{_b64(payload)}.{_b64(mac)}"
    assert token == SIGNER.sign("ada", "item-1", "pick", DAY)
    assert SIGNER.verify(token).action == "pick"


def test_a_signer_sent_to_another_process_signs_alike() -> None:
    """Render workers get the run's links, signer included, pickled."""
    again = pickle.loads(pickle.dumps(SIGNER))
    assert again.sign("ada", "item-1", "pick", DAY) == SIGNER.sign("ada", "item-1", "pick", DAY)
