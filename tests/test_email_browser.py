"""The email's HTML in a real browser: headless Debian chromium driven by selenium.

At a desktop mail pane's width (600 px) and a phone's (375 px), nothing may overflow
sideways and every item title must be visible; in dark mode the page must turn dark.
Chromium missing is a failure, not a skip: `make browser` (part of `make test`)
installs it. The screenshots in docs/images come from the same code:

    PYTHONPATH=. .venv/bin/python tests/test_email_browser.py docs/images
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.email import EmailSettings, RenderedEmail, render_email
from digest.render.links import Links
from digest.tokens import TokenSigner

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Without the background-networking flags chromium stalls on a machine with no network;
# hidden scrollbars make the viewport as wide as a phone's, which overlays its scrollbar.
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
)  # fmt: skip
WIDTHS = (600, 375)
HOSTILE = Path(__file__).resolve().parent / "fixtures" / "render" / "hostile.json"
DAY = date(2026, 3, 11)
NOW = datetime(2026, 3, 11, 7, 0, tzinfo=UTC)
FEED = "https://digest.example.org/feeds/3f9a2c.atom"
SETTINGS = EmailSettings(
    sender="digest <digest@example.org>",
    list_id="digest.example.org",
    links=Links(
        base_url="https://digest.example.org",
        signer=TokenSigner("x" * 32),
        unsubscribe_mailbox="unsubscribe@digest.example.org",
    ),
    max_html_bytes=10**7,  # the hostile digest shows every title; the cap is tested elsewhere
)
ADA = Recipient("ada", "Ada Lovelace", "ada@example.org", teams=("efficiency",))

#: One script call measures a loaded email: the viewport, the document's width, each
#: title's box and visibility, and any element whose box sticks out on the right.
MEASURE = """
const vw = window.innerWidth;
const titles = [...document.querySelectorAll('[data-digest="title"]')].map(el => {
  const box = el.getBoundingClientRect(), style = getComputedStyle(el);
  return {text: el.textContent.trim(), left: box.left, right: box.right,
          width: box.width, height: box.height, display: style.display,
          visibility: style.visibility, clipped: el.scrollWidth > el.clientWidth,
          visible: el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})};
});
const sticking = [...document.body.querySelectorAll('*')].filter(el => {
  const box = el.getBoundingClientRect();
  return box.width > 0 && box.right > vw + 0.5;
}).map(el => el.tagName.toLowerCase() + '.' + el.className);
return {inner: vw, client: document.documentElement.clientWidth,
        scroll: document.documentElement.scrollWidth, titles: titles, sticking: sticking};
"""
COLOURS = """
const colour = (el, prop) => el ? getComputedStyle(el)[prop] : null;
return {page: colour(document.body, 'backgroundColor'),
        card: colour(document.querySelector('.d-card table'), 'backgroundColor'),
        title: colour(document.querySelector('.d-title a, .d-title'), 'color'),
        text: colour(document.querySelector('.d-text'), 'color')};
"""


def start_browser() -> webdriver.Chrome:
    """Headless chromium; a missing browser is an error saying how to install it."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: run `make browser` to install")
    options = Options()
    for flag in FLAGS:
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def show(driver: webdriver.Chrome, page: Path, width: int, height: int = 900) -> None:
    """Load `page` with a viewport exactly `width` CSS pixels wide."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return window.innerWidth")
    if inner != width:  # window chrome takes its share: ask for that much more
        driver.set_window_size(2 * width - inner, height)
    driver.get(page.as_uri())
    assert driver.execute_script("return window.innerWidth") == width


def dark_mode(driver: webdriver.Chrome, on: bool) -> None:
    features = [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})


def save_screenshots(driver: webdriver.Chrome, page: Path, folder: Path) -> list[Path]:
    """Whole-page screenshots at each width (and the phone in dark mode) into `folder`."""
    shots = []
    for width, dark in [(600, False), (375, False), (375, True)]:
        show(driver, page, width)
        dark_mode(driver, dark)
        _fit_height(driver)
        path = folder / f"email-{width}{'-dark' if dark else ''}.png"
        driver.save_screenshot(str(path))
        shots.append(path)
    dark_mode(driver, False)
    return shots


def _fit_height(driver: webdriver.Chrome) -> None:
    """Make the viewport as tall as the page, so a screenshot shows all of it."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, height)
    driver.set_window_size(width, 2 * height - driver.execute_script("return window.innerHeight"))


def realistic_digest() -> ReaderDigest:
    """Five papers from examples/dumps with plausible authors, links and reasons."""
    papers = [
        (
            "Efficient KV Cache Compression for Long Context Inference",
            "Serving long-context language models is dominated by the memory of the key-value "
            "cache. We quantize cached keys per channel and values per token to 2 bits and evict "
            "low-attention tokens, cutting cache memory by 8x with negligible accuracy loss on "
            "LongBench.",
            ("Mira Okafor", "Jonas Lindqvist", "Priya Raman", "Wei Zhang"),
            "https://github.com/example-lab/kv-squeeze",
            Explanation(interest="quantization", terms=("kv cache", "long context")),
        ),
        (
            "Sparse Mixture of Experts Routing with Learned Capacity Factor",
            "Mixture-of-experts (MoE) layers scale model capacity without a matching growth in "
            "compute, but fixed capacity factors waste tokens on overloaded experts. We learn a "
            "per-layer capacity factor jointly with the router and show that it halves dropped "
            "tokens while keeping throughput.",
            ("Lena Fischer", "Tomás Ortega"),
            "https://github.com/example-lab/learned-capacity",
            Explanation(
                interest="mixture of experts",
                because_title="Mixture-of-Experts Meets Instruction Tuning for Translation",
            ),
        ),
        (
            "Tokenizer-Free Language Modelling with Byte-Level Patches",
            "We replace subword tokenizers with dynamically sized byte patches chosen by an "
            "entropy model. At equal compute, byte-patch models match subword models on English "
            "and outperform them on noisy text and on scripts that tokenizers fragment.",
            (
                "Ana Ortiz",
                "Ben Roy",
                "Cai Tan",
                "Dev Gupta",
                "Eli Nakamura",
                "Fay Sorensen",
                "Gus Kowalski",
            ),
            None,
            Explanation(because_title="Efficient KV-Cache Compression for Long-Context Inference"),
        ),
        (
            "QuantPrune: Joint 4-bit Quantization and Structured Pruning of Large Language Models",
            "Post-training quantization and pruning are usually applied one after the other. We "
            "formulate both as a single mixed-integer problem over weight blocks and solve it "
            "greedily, reaching 4-bit weights with 30% structured sparsity at under one point of "
            "perplexity loss on 7B and 13B models.",
            ("Sofia Marino", "Kenji Watanabe", "Amara Diallo"),
            None,
            Explanation(interest="quantization", terms=("pruning", "4-bit")),
        ),
        (
            "Calibrated Uncertainty for Retrieval-Augmented Question Answering",
            "Retrieval-augmented systems answer confidently even when their retrieved evidence is "
            "irrelevant. We train a small calibration head on retrieval scores and answer "
            "likelihoods, which improves selective accuracy and lets the system abstain when "
            "evidence is missing.",
            ("Hannah Berg",),
            None,
            Explanation(),
        ),
    ]
    picks = []
    for rank, (title, abstract, authors, code, why) in enumerate(papers, 1):
        paper = StoredItem(
            id=f"p{rank}",
            title=title,
            abstract=abstract,
            url=f"https://arxiv.org/abs/2603.{10040 + rank}",
            authors=authors,
            code_url=code,
        )
        picks.append(Pick(paper, rank, 1.0 - rank / 10, why))
    return ReaderDigest("ada", DAY, tuple(picks))


def unbroken_digest() -> ReaderDigest:
    """Every field a long string with no place to break a line."""
    url_like = "https://example.org/" + "a" * 280
    paper = StoredItem(
        id="p1",
        title=url_like,
        abstract="Starts normally, then " + "b" * 600,
        url="https://arxiv.org/abs/2603.00001",
        authors=("C" * 200,),
        code_url="https://github.com/" + "d" * 300,
        project_urls=("https://" + "e" * 60 + ".example.org/" + "f" * 200,),
    )
    why = Explanation(interest="g" * 150, because_title="h" * 150, terms=("i" * 150,))
    picks = (
        Pick(paper, 1, 1.0, why),
        Pick(StoredItem(id="p2", title="j" * 300), 2, 0.5, why),
    )
    return ReaderDigest("a" * 120, DAY, picks)


def hostile_digest() -> ReaderDigest:
    """Every hostile text of tests/fixtures/render/hostile.json as a title."""
    corpus = json.loads(HOSTILE.read_text(encoding="utf-8"))
    picks = []
    for rank, entry in enumerate(corpus["texts"], 1):
        title = entry["value"] * entry.get("times", 1)
        paper = StoredItem(id=f"p{rank}", title=title, url="https://arxiv.org/abs/2603.00001")
        picks.append(Pick(paper, rank, 0.0, Explanation()))
    return ReaderDigest("ada", DAY, tuple(picks))


DIGESTS = {"realistic": realistic_digest, "unbroken": unbroken_digest, "hostile": hostile_digest}


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = start_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, RenderedEmail]]:
    folder = tmp_path_factory.mktemp("emails")
    pages = {}
    for name, make in DIGESTS.items():
        digest = make()
        recipient = ADA if digest.audience == "ada" else Recipient(digest.audience, "")
        mail = render_email(digest, recipient, SETTINGS, now=NOW, feed_url=FEED)
        path = folder / f"{name}.html"
        path.write_text(mail.html, encoding="utf-8")
        pages[name] = (path, mail)
    return pages


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(DIGESTS))
def test_nothing_overflows_and_every_title_is_visible(
    browser: webdriver.Chrome, emails: dict, name: str, width: int
) -> None:
    path, mail = emails[name]
    show(browser, path, width)
    found = browser.execute_script(MEASURE)
    assert found["inner"] == found["client"] == width
    assert found["scroll"] <= width, f"{found['scroll']} px wide at {width}: {found['sticking']}"
    assert found["sticking"] == []
    assert len(found["titles"]) == mail.shown > 0
    for title in found["titles"]:
        assert title["visible"] and title["display"] != "none", title
        assert title["visibility"] == "visible", title
        assert title["width"] > 0 and title["height"] > 0, title
        assert title["left"] >= 0 and title["right"] <= width, title
        assert not title["clipped"], title


def test_realistic_titles_read_as_given(browser: webdriver.Chrome, emails: dict) -> None:
    path, _ = emails["realistic"]
    show(browser, path, 375)
    titles = [t["text"] for t in browser.execute_script(MEASURE)["titles"]]
    assert titles == [p.item.title for p in realistic_digest().picks]


def luminance(css: str) -> float:
    """Relative luminance (0 black to 1 white) of a computed `rgb(...)` colour."""
    channels = [int(v) / 255 for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_dark_mode_turns_the_page_dark_and_the_text_light(
    browser: webdriver.Chrome, emails: dict
) -> None:
    path, _ = emails["realistic"]
    show(browser, path, 375)
    light = browser.execute_script(COLOURS)
    dark_mode(browser, True)
    try:
        dark = browser.execute_script(COLOURS)
    finally:
        dark_mode(browser, False)
    assert luminance(light["page"]) > 0.8 and luminance(light["card"]) > 0.9
    assert luminance(light["title"]) < 0.05
    assert luminance(dark["page"]) < 0.02 and luminance(dark["card"]) < 0.02
    assert luminance(dark["title"]) > 0.8 and luminance(dark["text"]) > 0.5


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_screenshots_show_the_whole_email_at_each_width(
    browser: webdriver.Chrome, emails: dict, tmp_path: Path
) -> None:
    path, _ = emails["realistic"]
    shots = save_screenshots(browser, path, tmp_path)
    sizes = {shot.name: png_size(shot) for shot in shots}
    assert [w for w, _ in sizes.values()] == [600, 375, 375]
    assert all(height > 1000 for _, height in sizes.values())


if __name__ == "__main__":
    # Regenerate docs/images: PYTHONPATH=. python tests/test_email_browser.py docs/images
    out = Path(sys.argv[1]).resolve()
    driver = start_browser()
    try:
        page = out / "email.html"
        page.write_text(
            render_email(realistic_digest(), ADA, SETTINGS, now=NOW, feed_url=FEED).html,
            encoding="utf-8",
        )
        for shot in save_screenshots(driver, page, out):
            print(shot)
        page.unlink()
    finally:
        driver.quit()
