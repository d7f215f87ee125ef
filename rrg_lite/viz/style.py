"""The book's house style for figures: sizes and fonts that read at the width the rendered page gives them.

Why these numbers. The rendered book (Jupyter Book 1.x, sphinx-book-theme) gives a cell's output a column
:data:`CONTENT_PX` = 688 CSS px wide in a 1280 px window (the article is 752 px; outputs are indented; measured in
Chromium, and ``tests/test_rendered_book.py`` checks it). An image wider than the column is scaled down to fit, and its text shrinks with it: a 16-inch figure
printed at 72 dpi (1152 px) shows at 64 % of its size, so matplotlib's 8-pt legend becomes 5 px text. The style
therefore ties figure size to the column:

- ``figure.dpi`` = :data:`DPI` = 100, and a full-width figure is :data:`FULL_WIDTH` = 6.88 in, i.e. exactly the
  column. PNGs are printed at 2× (sharp on HiDPI screens) and tagged to show at half their pixel size, so one
  figure inch is 100 CSS px and a font of *s* points is *s* · 100 / 72 CSS px.
- Body text 10 pt (13.9 px), ticks and legends 9 pt (12.5 px); nothing smaller than :data:`MIN_FONT_PT` = 8 pt
  (11.1 px). The rendered-book test fails below :data:`MIN_CSS_PX` = 10 px, a margin under the style's floor;
  the page's own text is 16 px and its smallest (captions, code) ~13 px.
- Every PNG carries its smallest font size and its dpi as PNG text chunks (``rrg:min_font_pt``, ``rrg:dpi``,
  ``rrg:scale``) so the browser test can compute the rendered size of the smallest glyph exactly.

Use it: ``import rrg_lite.viz`` calls :func:`use_book_style` once (rcParams, the notebook PNG formatter, and
filters for warnings that are noise to a reader). Make figures with :func:`figsize` / :func:`subplots` so that
their width is a fraction of the column and their panels are large enough to read.
"""
from __future__ import annotations

import warnings
from binascii import b2a_base64
from io import BytesIO
from typing import Any

__all__ = ["CONTENT_PX", "DPI", "FULL_WIDTH", "MIN_FONT_PT", "MIN_CSS_PX", "RC", "figsize", "subplots",
           "min_font_pt", "rendered_font_px", "figure_png", "use_book_style", "filter_noise", "NOISE"]

CONTENT_PX = 688        # CSS px of a cell output area at a 1280 px window (sphinx-book-theme 1.3)
DPI = 100               # figure inches → CSS px: 1 in = 100 px on the page
FULL_WIDTH = CONTENT_PX / DPI   # inches: a full-width figure fills the column at scale 1
MIN_FONT_PT = 8.0       # the smallest font the style uses (11.1 CSS px)
MIN_CSS_PX = 10.0       # the smallest rendered text the book accepts (tests/test_rendered_book.py)
SCALE = 2               # PNG pixels per CSS px (HiDPI)

RC: dict[str, Any] = {
    "figure.dpi": DPI,
    "figure.figsize": (FULL_WIDTH, FULL_WIDTH * 0.5),
    "figure.facecolor": "white",          # readable in a dark browser theme too
    "savefig.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "image.interpolation": "nearest",     # voxels stay voxels; no smoothing that hides a one-voxel lesion
}


def figsize(width: float = 1.0, aspect: float = 0.5) -> tuple[float, float]:
    """(w, h) in inches for a figure ``width`` × the content column wide, ``aspect`` = height / width."""
    if not 0 < width <= 1:
        raise ValueError(f"width is a fraction of the content column in (0, 1], got {width}")
    w = FULL_WIDTH * width
    return (w, w * aspect)


def subplots(nrows: int = 1, ncols: int = 1, width: float = 1.0, panel_aspect: float = 0.75,
             extra_height: float = 0.0, **kwargs):
    """``plt.subplots`` sized for the column: ``ncols`` panels share ``width`` × the column, each panel
    ``panel_aspect`` (height / width) tall, plus ``extra_height`` inches for a suptitle or a legend row.

    Returns ``(fig, axes)`` like ``plt.subplots`` (``squeeze`` as given, default True).
    """
    import matplotlib.pyplot as plt

    w = FULL_WIDTH * width
    h = nrows * (w / ncols) * panel_aspect + extra_height
    return plt.subplots(nrows, ncols, figsize=(w, h), **kwargs)


def _texts(fig):
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.figure is not None:
            yield t


def min_font_pt(fig) -> float | None:
    """The smallest font size (points) of any visible, non-empty text in ``fig``; None if it has no text.

    Tick labels get their text at draw time, so the figure is drawn (without rendering) first.
    """
    fig.draw_without_rendering()
    sizes = [float(t.get_fontsize()) for t in _texts(fig)]
    return min(sizes) if sizes else None


def rendered_font_px(font_pt: float, dpi: float, natural_px: float, shown_px: float) -> float:
    """CSS px of a ``font_pt`` glyph in a PNG printed at ``dpi`` (natural width ``natural_px`` image pixels)
    when the page shows it ``shown_px`` CSS px wide. ``font_pt / 72 * dpi`` is its height in image pixels."""
    return font_pt / 72.0 * dpi * shown_px / natural_px


def _fit_inside(fig, slack: float = 0.02) -> None:
    """Long tick labels or a legend outside the axes make the tight bounding box wider than the figure, and the
    page then shrinks the whole image. When that happens to a figure without a layout engine, lay it out with
    ``tight_layout`` so that everything fits inside the width the figure was made for."""
    if fig.get_layout_engine() is not None:
        return
    width_px = fig.get_figwidth() * fig.dpi
    try:
        bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    except Exception:  # pragma: no cover - a figure that cannot be measured is printed as it is
        return
    if bbox.width * fig.dpi > width_px * (1 + slack):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not compatible with tight_layout": then it stays as it was
            fig.tight_layout()


def figure_png(fig, scale: int = SCALE) -> tuple[bytes, dict[str, int]] | None:
    """PNG bytes of ``fig`` (tight bounding box, printed at ``scale`` × ``fig.dpi``) with the style's text chunks,
    and the display size ``{"width", "height"}`` in CSS px (the pixel size / ``scale``). None for a figure with
    no axes (what IPython's own formatter returns for an empty figure)."""
    if not fig.axes and not fig.texts and not fig.images:
        return None
    _fit_inside(fig)
    smallest = min_font_pt(fig)
    dpi = float(fig.dpi) * scale
    meta = {"Software": "rrg_lite.viz.style", "rrg:dpi": f"{dpi:g}", "rrg:scale": str(scale),
            "rrg:min_font_pt": "none" if smallest is None else f"{smallest:g}"}
    buf = BytesIO()
    fig.canvas.print_figure(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=meta)
    data = buf.getvalue()
    from PIL import Image

    w, h = Image.open(BytesIO(data)).size
    return data, {"width": w // scale, "height": h // scale}


def _png_formatter(fig):
    """IPython ``image/png`` formatter for Figures: base64 PNG + the half-size display metadata."""
    out = figure_png(fig)
    if out is None:
        return None
    data, size = out
    return b2a_base64(data, newline=False).decode("ascii"), size


# Warnings that say nothing to a reader of the book (they concern library internals the chapters do not
# control), each with the reason. Filtered by message and category only, so a new warning still shows.
NOISE: list[tuple[type[Warning], str, str]] = [
    # transformers 5.x, when PEFT asks a LoRA-wrapped model (chapters 5-7) whether gradient checkpointing is on:
    # a rename inside the libraries that the chapter cannot act on; its text carries the build machine's
    # site-packages path.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", ""),
]


def filter_noise() -> None:
    """Install :data:`NOISE`'s filters (idempotent), and turn off Hugging Face progress bars ("Loading weights:
    0%|...") that an executed notebook freezes at an arbitrary frame. The variable is read when
    ``huggingface_hub`` is imported, so this works for chapters that import ``rrg_lite.viz`` first."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for category, message, module in NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module or "")


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the book extra
        return None
    return get_ipython()


_APPLIED = False


def use_book_style(force: bool = False) -> None:
    """Apply the house style: rcParams, the notebook's PNG formatter (inside IPython) and the noise filters.

    Called by ``import rrg_lite.viz``; calling it again is cheap and re-registers the formatter (after a
    ``%matplotlib inline`` that reset it, for instance).
    """
    global _APPLIED
    import matplotlib

    matplotlib.rcParams.update(RC)
    filter_noise()
    ip = _ipython()
    if ip is not None and hasattr(ip, "display_formatter"):
        backend = str(matplotlib.rcParams._get("backend") or "").lower()
        if "inline" in backend:
            # Loading the inline backend runs its one-time set-up, which registers IPython's own PNG formatter;
            # do that first so that ours, registered next, is the one that stays.
            import matplotlib_inline.backend_inline  # noqa: F401
        from matplotlib.figure import Figure

        for mime in ("image/svg+xml", "image/jpeg", "application/pdf"):
            ip.display_formatter.formatters[mime].pop(Figure, None)
        ip.display_formatter.formatters["image/png"].for_type(Figure, _png_formatter)
    _APPLIED = True


def _png_text(data: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG (for tests and the rendered-book check)."""
    from PIL import Image

    return dict(Image.open(BytesIO(data)).text)

