"""Signed link tokens: who did what to which item, from which digest.

A token is `<payload>.<signature>`, both URL-safe base64 without padding: the
payload is `reader`, `item`, `action` and `day` joined by a unit separator, and the
signature is HMAC-SHA256 of it under the deployment's secret, cut to 128 bits. The
server trusts nothing else in a request: a tampered, truncated or foreign token
verifies as nothing. A digest carries a token per item and more, so signing copies
the two SHA-256 states HMAC starts from (RFC 2104), prepared once per secret: half
the cost of copying an `hmac` object (a test checks it against `hmac.digest`).

Actions: "pick" is one item of one digest, and stands for all three of its links
(the item's click, "more like this" and "less like this": the service's path says
which), so a digest signs one token per item rather than three; the reader holds all
three anyway. "click", "more" and "less" tokens name one link each: digests sent
before "pick" carry them, and they keep working. "unsubscribe" is the footer's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import date

from digest.errors import DigestError

ACTIONS = ("pick", "click", "more", "less", "unsubscribe")
_SALT = "digest-link-v2|"
_SEP = "\x1f"
_MAC_BYTES = 16
#: A secret shorter than this is refused: HMAC is only as strong as its key.
MIN_SECRET = 16
_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: SHA-256's block size, and HMAC's key pads (RFC 2104) as translation tables.
_BLOCK = 64
_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))


class TokenError(DigestError):
    """A token that does not verify: tampered, truncated, forged or malformed."""


@dataclass(frozen=True)
class LinkToken:
    """What a verified token says."""

    reader: str
    item_id: str
    action: str
    day: date


class TokenSigner:
    """Signs and verifies link tokens with one secret."""

    def __init__(self, secret: str):
        if len(secret) < MIN_SECRET:
            raise DigestError(f"the link secret must be at least {MIN_SECRET} characters")
        self._secret = secret
        key = _SALT.encode() + secret.encode("utf-8")
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def __reduce__(self) -> tuple[type[TokenSigner], tuple[str]]:
        # Sent to render workers with the run's links: hash states cannot be pickled.
        return TokenSigner, (self._secret,)

    def _mac(self, payload: bytes) -> bytes:
        """HMAC-SHA256 of `payload`, cut to `_MAC_BYTES`."""
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_MAC_BYTES]

    def sign(self, reader: str, item_id: str, action: str, day: date) -> str:
        """A token for one link."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if _SEP in reader or _SEP in item_id:
            raise ValueError("reader and item ids cannot hold the separator")
        payload = _SEP.join((reader, item_id, action, day.isoformat())).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> LinkToken:
        """The token's content, or TokenError when it is not one of ours."""
        body, dot, signature = token.partition(".")
        try:
            payload, mac = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise TokenError("invalid link") from None
        if not dot or not hmac.compare_digest(mac, self._mac(payload)):
            raise TokenError("invalid link")
        try:
            reader, item_id, action, day = payload.decode("utf-8").split(_SEP)
            when = date.fromisoformat(day)
        except ValueError:
            raise TokenError("invalid link") from None
        if action not in ACTIONS:
            raise TokenError("invalid link")
        return LinkToken(reader, item_id, action, when)


def _b64(data: bytes) -> str:
    # base64.urlsafe_b64encode, without its Python-level wrappers: signing is hot.
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE).decode()


def _unb64(text: str) -> bytes:
    """Decode, accepting only the one canonical spelling `_b64` produces.

    Base64 decoding is lenient (padding, `+` for `-`, spare low bits in the last
    character), so several strings decode to the same bytes; a link that was edited
    must not verify even when its bytes survive the edit.
    """
    if not text.isascii():
        raise ValueError("not base64")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64")
    return data
