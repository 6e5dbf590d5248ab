"""Signed link tokens: who did what to which item, from which digest.

A token is an itsdangerous URL-safe serialisation of `[reader, item, action, day]`
signed with HMAC-SHA256 under the deployment's secret. The server trusts nothing
else in a request: a tampered, truncated or foreign token verifies as nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from itsdangerous import BadSignature, URLSafeSerializer

from digest.errors import DigestError

ACTIONS = ("click", "more", "less", "unsubscribe")
_SALT = "digest-link-v1"
#: A secret shorter than this is refused: HMAC is only as strong as its key.
MIN_SECRET = 16


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
        self._serializer = URLSafeSerializer(
            secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    def sign(self, reader: str, item_id: str, action: str, day: date) -> str:
        """A token for one link."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return str(self._serializer.dumps([reader, item_id, action, day.isoformat()]))

    def verify(self, token: str) -> LinkToken:
        """The token's content, or TokenError when it is not one of ours."""
        try:
            data = self._serializer.loads(token)
        except (BadSignature, UnicodeError, ValueError, TypeError):
            raise TokenError("invalid link") from None
        if not (
            isinstance(data, list) and len(data) == 4 and all(isinstance(v, str) for v in data)
        ):
            raise TokenError("invalid link")
        reader, item_id, action, day = data
        if action not in ACTIONS:
            raise TokenError("invalid link")
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise TokenError("invalid link") from None
        return LinkToken(reader, item_id, action, when)
