"""The built book, opened in headless Chromium with the network cut: chapter 1's viewer and figures show.

Runs after ``jupyter-book build`` (``make test`` does both). Screenshots land in ``_build/screenshots/`` so a
person can look at what the test saw.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
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
