"""Every URL a rendered digest carries, built in one place.

With a base URL and a secret, item links go through the feedback service
(`/c/<token>` records the click, then redirects), and each item gets "more like
this" / "less like this" links (`/f/<token>/more`, `/f/<token>/less`: one token per
item, action "pick"); the footer links to `/u/<token>`.
Without them, items link straight to their own URL and the feedback links are left
out. Only http(s) URLs ever become links: anything else yields None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

from digest.records import StoredItem
from digest.tokens import TokenSigner

_WEB_URL = re.compile(
    r"https?://[^\s\x00-\x1f\x7f-\x9f/?#@\[\]]+(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?", re.I
)


def is_web_url(url: str | None) -> bool:
    """True for an absolute http or https URL with a host: the only URLs we link.

    One regular expression (renderers call this for every link of every digest): no
    whitespace or control characters anywhere, no user part, no bracketed host.
    """
    return bool(url) and _WEB_URL.fullmatch(url) is not None


class PickLinks(NamedTuple):
    """A pick's three links: the item's own, "more like this" and "less like this"."""

    url: str | None
    more: str | None
    less: str | None


#: Picks whose links `Links.pick` remembers: a digest's, many times over.
_PICK_MEMO = 256


@dataclass(frozen=True)
class Links:
    """URL builder for one run: base URL, signer and unsubscribe mailbox."""

    base_url: str | None = None
    signer: TokenSigner | None = None
    unsubscribe_mailbox: str | None = None
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def pick(self, audience: str, item: StoredItem, day: date) -> PickLinks:
        """All three links of one pick, each an http(s) URL or None.

        Every format of a digest (email, feeds, wiki post) asks for the same links; they
        are made once, and the renderers need not check them again: a tracked link is
        the service's base URL (checked here) and a URL-safe token. The three share one
        token (action "pick"; the path says which it is): a digest signed sixty links,
        and signing was the largest cost of its links.
        """
        key = (audience, item.id, item.url, day)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= _PICK_MEMO:
                self._memo.clear()
            found = self._memo[key] = self._pick(audience, item, day)
        return found

    def _pick(self, audience: str, item: StoredItem, day: date) -> PickLinks:
        url = item.url if _is_item_url(item.url) else None
        if not self.tracked or audience.startswith("team:"):
            return PickLinks(url, None, None)
        assert self.base_url and self.signer
        if not _is_base_ok(self.base_url):
            return PickLinks(None, None, None)
        token = self.signer.sign(audience, item.id, "pick", day)
        base = self.base_url.rstrip("/")
        return PickLinks(
            f"{base}/c/{token}" if url else None, f"{base}/f/{token}/more", f"{base}/f/{token}/less"
        )

    @property
    def tracked(self) -> bool:
        """True when links go through the feedback service."""
        return bool(self.base_url and self.signer)

    def unsubscribe(self, audience: str, day: date) -> str | None:
        """The https unsubscribe page (also the RFC 8058 one-click POST target)."""
        if not self.tracked or audience.startswith("team:"):
            return None
        assert self.base_url and self.signer
        if not _is_base_ok(self.base_url):
            return None
        token = self.signer.sign(audience, "", "unsubscribe", day)
        return f"{self.base_url.rstrip('/')}/u/{token}"

    def unsubscribe_mailto(self, audience: str) -> str | None:
        """A mailto: unsubscribe address naming the reader in the subject."""
        if not self.unsubscribe_mailbox:
            return None
        return f"mailto:{self.unsubscribe_mailbox}?subject={quote('unsubscribe ' + audience)}"

    def feed(self, feed_token: str | None, kind: str) -> str | None:
        """A reader's feed URL on the service (`kind` is "atom" or "rss")."""
        if not self.base_url or not feed_token:
            return None
        return f"{self.base_url.rstrip('/')}/feeds/{feed_token}.{kind}"


#: An item URL is checked once per process (a paper's link is in many digests).
_is_item_url = lru_cache(maxsize=16384)(is_web_url)


@lru_cache(maxsize=8)
def _is_base_ok(base: str) -> bool:
    """A service link is a web URL when its base is: the rest is a path and a URL-safe token."""
    return is_web_url(base.rstrip("/") + "/c/token")
