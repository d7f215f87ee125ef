"""The built book, opened in headless Chromium with the network cut: chapter 1's viewer and figures show, and
every chapter reads at 1280 px (issue 18).

Runs after ``jupyter-book build`` (``make test`` does both). Screenshots land in ``_build/screenshots/`` so a
person can look at what the test saw.

Legibility checks, on every chapter page (``notebooks/*.html``):

- no output area, table or printed line is wider than the output column (``scrollWidth`` vs ``clientWidth``:
  what does not fit hides behind a horizontal scroll bar); the column is what ``rrg_lite.viz.style`` assumes;
- no figure's smallest text renders under ``MIN_CSS_PX`` = 10 CSS px. The house style writes each PNG's smallest
  font size (pt) and dpi into PNG text chunks, so the rendered glyph size is exact:
  ``pt / 72 × dpi × shown width / natural width``. An image without those chunks (not made by the style, e.g.
  the slice viewer's frames) must be shown at ≥ 90 % of its natural width, so its text is as large as drawn.
  Why 10 px: the page's body text is 16 px and its smallest text (code, captions) ~13 px; the style's floor is
  8 pt = 11.1 px; below ~10 px a sans-serif's x-height drops under 5 px and labels stop being readable at
  arm's length on a 96-dpi screen;
- no ``Warning`` and no machine path (/work, /tmp, /root, /home) in any output;
- every image has alt text that says something (≥ 3 words, not its file name or a hash);
- no cell ends in an object repr (``Profile(...)``, ``MultimodalLM(\n  (encoder): ...``, ``<... object at 0x...>``).
"""
from __future__ import annotations

import base64
import os
import re
import shutil
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# RRG_BOOK_HTML: check a book built elsewhere (e.g. a partial build in /tmp)
HTML = Path(os.environ.get("RRG_BOOK_HTML", ROOT / "_build" / "html"))
MIN_CSS_PX = 10.0          # see the module docstring; rrg_lite.viz.style.MIN_CSS_PX
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|tmp|root|home)/")
WARNING = re.compile(r"\b\w*Warning\b")
OBJECT_REPR = re.compile(r"^\s*(<[\w.]+ object at 0x[0-9a-f]+>|[A-Z]\w*\((\s*$|\s*\(\w+\)|[\w-]+/[\w-]+:))", re.M)
SHOTS = ROOT / "_build" / "screenshots"

pytestmark = pytest.mark.rendered


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        msg = "headless Chromium not found (make test installs Debian's `chromium`)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def _not_blank(png: bytes, min_std: float = 8.0) -> float:
    """Standard deviation of the grey levels of a screenshot: a blank area is ~0."""
    from io import BytesIO

    from PIL import Image

    grey = np.asarray(Image.open(BytesIO(png)).convert("L"), dtype=np.float32)
    return float(grey.std())


@pytest.fixture(scope="module")
def page():
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML / 'index.html'} is missing: build the book first (make book)")
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)

        def only_local(route):
            if route.request.url.startswith(("file:", "data:", "blob:")):
                route.continue_()
            else:
                external.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        pg = context.new_page()
        pg.external_requests = external
        yield pg
        browser.close()


def test_landing_page_renders(page):
    page.goto((HTML / "index.html").as_uri())
    assert "radiology report generation" in page.inner_text("main").lower()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "index.png"), full_page=False)


def test_chapter_1_viewer_and_figures_are_visible(page):
    chapter = HTML / "notebooks" / "01_radiology_images.html"
    assert chapter.exists(), f"{chapter} was not built"
    page.goto(chapter.as_uri())
    page.wait_for_load_state("load")

    # The kernel-free viewer: matplotlib's JS player with every slice embedded.
    viewer = page.locator("img[id^='_anim_img']").first
    viewer.scroll_into_view_if_needed()
    assert viewer.is_visible(), "the slice viewer is not visible"
    box = viewer.bounding_box()
    assert box and box["width"] > 150 and box["height"] > 150, f"viewer too small: {box}"
    first = viewer.screenshot()
    assert _not_blank(first) > 8.0, "the viewer shows a blank area"
    src_before = viewer.get_attribute("src")
    # Step one slice forward with the player's own button: the picture must change.
    page.locator("button[onclick*='next_frame']").first.click()
    page.wait_for_timeout(300)
    assert viewer.get_attribute("src") != src_before, "the viewer did not move to the next slice"
    page.screenshot(path=str(SHOTS / "chapter01_viewer.png"), full_page=False)

    # Static figures: matplotlib PNG outputs in the page.
    figures = page.locator(".cell_output img[src^='data:image/png'], .cell_output img[src$='.png']")
    assert figures.count() >= 3, f"expected several figures in chapter 1, found {figures.count()}"
    fig = figures.first
    fig.scroll_into_view_if_needed()
    assert fig.is_visible() and _not_blank(fig.screenshot()) > 8.0, "the first figure is blank"
    page.screenshot(path=str(SHOTS / "chapter01.png"), full_page=True)


def test_pages_need_no_network(page):
    """Everything the pages load comes with the book; nothing was fetched from the network."""
    page.goto((HTML / "notebooks" / "01_radiology_images.html").as_uri())
    page.wait_for_load_state("load")
    assert not page.external_requests, f"the page tried to fetch: {page.external_requests[:5]}"


# ---- legibility of every chapter (issue 18) -------------------------------------------------------------------

def _chapters() -> list[Path]:
    pages = sorted((HTML / "notebooks").glob("*.html"))
    if not pages:
        pytest.fail(f"no chapter pages under {HTML / 'notebooks'}: build the book first (make book)")
    return pages


def _open(page, chapter: Path):
    page.goto(chapter.as_uri())
    page.wait_for_load_state("load")


_OVERFLOW_JS = r"""
() => {
  const found = [], reported = [];
  for (const out of document.querySelectorAll('.cell_output')) {
    const limit = out.clientWidth;
    for (const el of [out, ...out.querySelectorAll('*')]) {
      if (reported.some(r => r.contains(el))) continue;   // report the outermost element only
      const tooWide = el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible';
      const pokesOut = el.getBoundingClientRect().width > limit + 1;
      if (tooWide || pokesOut) {
        reported.push(el);
        found.push({tag: el.tagName, scroll: el.scrollWidth, client: el.clientWidth, column: limit,
                    text: (el.innerText || el.getAttribute('alt') || '').trim().slice(0, 70)});
      }
    }
  }
  return found;
}
"""


def test_output_column_is_what_the_style_assumes(page):
    from rrg_lite.viz.style import CONTENT_PX

    _open(page, _chapters()[0])
    widths = page.eval_on_selector_all(".cell_output", "els => els.map(e => e.clientWidth)")
    assert widths, "no cell outputs on the first chapter"
    assert abs(max(widths) - CONTENT_PX) <= 8, (
        f"output column is {max(widths)} px at 1280 px; rrg_lite.viz.style.CONTENT_PX says {CONTENT_PX}")


def test_no_output_wider_than_the_column(page):
    problems = []
    for chapter in _chapters():
        _open(page, chapter)
        for o in page.evaluate(_OVERFLOW_JS):
            problems.append(f"{chapter.name}: <{o['tag'].lower()}> {o['scroll']} px in a {o['column']} px column: "
                            f"{o['text']!r}")
    assert not problems, "outputs that scroll sideways or stick out:\n" + "\n".join(problems[:40])


def _image_bytes(src: str) -> bytes | None:
    if src.startswith("data:image/png;base64,"):
        return base64.b64decode(src.split(",", 1)[1])
    if src.startswith("file:"):
        path = Path(unquote(urlparse(src).path))
        return path.read_bytes() if path.suffix.lower() == ".png" and path.exists() else None
    return None


def _smallest_text_px(png: bytes, shown: float) -> tuple[float | None, str]:
    """(rendered px of the smallest glyph or None when unknown, how it was computed)."""
    from PIL import Image

    from rrg_lite.viz.style import rendered_font_px

    im = Image.open(BytesIO(png))
    natural = im.size[0]
    text = getattr(im, "text", {}) or {}
    if "rrg:min_font_pt" in text and "rrg:dpi" in text:
        if text["rrg:min_font_pt"] == "none":
            return None, "no text"
        px = rendered_font_px(float(text["rrg:min_font_pt"]), float(text["rrg:dpi"]), natural, shown)
        return px, f"{text['rrg:min_font_pt']} pt at {text['rrg:dpi']} dpi, {natural} px shown at {shown:.0f} px"
    return None, f"no style metadata; {natural} px shown at {shown:.0f} px ({shown / natural:.0%})"


def test_figure_text_is_large_enough(page):
    problems, checked = [], 0
    for chapter in _chapters():
        _open(page, chapter)
        imgs = page.eval_on_selector_all(
            ".cell_output img", "els => els.map(e => ({src: e.currentSrc || e.src, shown: e.getBoundingClientRect().width,"
                                " natural: e.naturalWidth, alt: e.getAttribute('alt') || ''}))")
        for im in imgs:
            png = _image_bytes(im["src"])
            if png is None or im["shown"] == 0:
                continue
            checked += 1
            px, how = _smallest_text_px(png, im["shown"])
            if px is None and how.startswith("no style metadata"):
                if im["shown"] < 0.9 * im["natural"]:
                    problems.append(f"{chapter.name}: a figure shrunk to fit, text size unknown ({how}); alt {im['alt'][:50]!r}")
            elif px is not None and px < MIN_CSS_PX:
                problems.append(f"{chapter.name}: smallest text {px:.1f} px < {MIN_CSS_PX} ({how}); alt {im['alt'][:50]!r}")
    assert checked, "no PNG figures found in the chapters"
    assert not problems, "figures whose text is too small to read at 1280 px:\n" + "\n".join(problems)


def test_outputs_have_no_warnings_or_machine_paths(page):
    problems = []
    for chapter in _chapters():
        _open(page, chapter)
        for text in page.eval_on_selector_all(".cell_output", "els => els.map(e => e.innerText)"):
            for rx, what in ((WARNING, "warning"), (MACHINE_PATH, "machine path")):
                m = rx.search(text)
                if m:
                    line = next(ln for ln in text.splitlines() if rx.search(ln))
                    problems.append(f"{chapter.name}: {what}: {line.strip()[:120]!r}")
    assert not problems, "outputs a reader should not see:\n" + "\n".join(problems[:40])


def _meaningful_alt(alt: str) -> bool:
    alt = (alt or "").strip()
    if len(alt.split()) < 3:
        return False
    if re.search(r"\.(png|jpe?g|svg|gif)$", alt, re.I) or "_images/" in alt or re.search(r"[0-9a-f]{24,}", alt):
        return False
    return True


def test_every_image_has_meaningful_alt_text(page):
    problems = []
    for chapter in _chapters():
        _open(page, chapter)
        for im in page.eval_on_selector_all(
                "main img", "els => els.map(e => ({alt: e.getAttribute('alt') || '', src: (e.currentSrc || e.src).slice(-40)}))"):
            if not _meaningful_alt(im["alt"]):
                problems.append(f"{chapter.name}: alt {im['alt'][:60]!r} (image ...{im['src']})")
    assert not problems, "images without a description:\n" + "\n".join(problems[:40])


def test_no_cell_ends_in_an_object_repr(page):
    problems = []
    for chapter in _chapters():
        _open(page, chapter)
        for text in page.eval_on_selector_all(".cell_output .output.text_plain", "els => els.map(e => e.innerText)"):
            if OBJECT_REPR.search(text):
                problems.append(f"{chapter.name}: {text.strip()[:80]!r}")
    assert not problems, "cells that end in an object's repr (end them with a table, a print or `;`):\n" + \
        "\n".join(problems)


def test_alt_and_repr_rules_themselves():
    """The detectors, on known good and bad strings (no browser needed)."""
    assert not _meaningful_alt("../_images/864f19f72cce0f43f2373af5ff25e01679e31771b9d086779.png")
    assert not _meaningful_alt("figure")
    assert _meaningful_alt("Three planes of the synthetic CT: axial, coronal and sagittal")
    assert OBJECT_REPR.search("Profile(images/cpu: nifti_path=None, n_slices=40)")
    assert OBJECT_REPR.search("MultimodalLM(\n  (encoder): ViT3D(")
    assert OBJECT_REPR.search("<rrg_lite.world.ct.CTStudy object at 0x7f3a2c>")
    assert not OBJECT_REPR.search("0.412 [0.398, 0.426]")
    assert not OBJECT_REPR.search("(40, 128, 128)")
    assert MACHINE_PATH.search("loaded /work/main/.venv/lib/python3.11/site-packages/x.py:12: FutureWarning")
    assert not MACHINE_PATH.search("data/ct-rate/dataset/train")
    assert WARNING.search("FutureWarning: `torch_dtype` is deprecated")
