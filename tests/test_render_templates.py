"""Templates: rendered once with slots, filled in per reader (digest.render.templates)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.render.templates import Slotted, environment, slot


def test_a_fragment_rendered_with_slots_fills_in_like_a_render_per_value() -> None:
    template = environment().from_string('<a href="{{ url }}">{{ title }}</a> #{{ rank }}')
    fragment = Slotted.of(template.render(url=slot("url"), title="A & B", rank=slot("rank")))
    assert fragment.fill({"url": "https://x.org/?a=1&amp;b=2", "rank": "3"}) == (
        '<a href="https://x.org/?a=1&amp;b=2">A &amp; B</a> #3'
    )


@given(st.text(), st.text())
def test_filling_is_replacing_each_slot(before: str, after: str) -> None:
    before, after = before.replace("\x00", ""), after.replace("\x00", "")
    text = f"{before}{slot('x')}{after}{slot('y')}"
    assert Slotted.of(text).fill({"x": "1", "y": "2"}) == f"{before}1{after}2"


def test_a_missing_value_or_an_unbalanced_slot_is_an_error() -> None:
    with pytest.raises(KeyError):
        Slotted.of(f"a {slot('x')} b").fill({})
    with pytest.raises(ValueError, match="unbalanced"):
        Slotted.of("a \x00x b")


@given(st.text(), st.text(), st.text())
def test_an_encoded_fragment_fills_to_the_filled_text_encoded(
    before: str, after: str, value: str
) -> None:
    before, after, value = (t.replace("\x00", "") for t in (before, after, value))
    fragment = Slotted.of(f"{before}{slot('x')}{after}")
    encoded = fragment.encoded().fill_bytes({"x": value.encode("utf-8", "surrogatepass")})
    assert encoded == fragment.fill({"x": value}).encode("utf-8", "surrogatepass")
