"""Looking at volumes: slice grids, overlays, and two slice viewers.

- :func:`show_slices` draws a few slices side by side (a static figure).
- :func:`slice_animation` returns a viewer that works **without a kernel and without network**: matplotlib
  renders every slice to a PNG and ``to_jshtml`` wraps them in a small self-contained player (slider, play,
  step buttons). This is the one the rendered book shows.
- :func:`slice_viewer` is the interactive ipywidgets viewer for a live Jupyter kernel (slice slider, axis and
  window pickers). Widgets need a running kernel, so the static book hides its output.

Arrays are indexed (D, H, W) = (slice, row, column) for ``axis=0``; pass ``axis`` to slice along another one.
Pass ``spacing`` (mm per voxel along the array's axes) to draw slices with the right aspect ratio.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rrg_lite.data.transforms import WINDOWS, window as apply_window

__all__ = ["show_slices", "slice_animation", "static_slice_viewer", "slice_viewer", "most_informative_slice"]


def _display(volume: np.ndarray, win: str | tuple[float, float] | None) -> np.ndarray:
    """Volume → [0, 1] for display: a CT window by name or (centre, width), or min–max when ``win`` is None."""
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {volume.shape}")
    if win is None:
        lo, hi = float(volume.min()), float(volume.max())
        return (volume - lo) / max(hi - lo, 1e-8)
    if isinstance(win, str):
        return apply_window(volume, win)
    return apply_window(volume, *win)


def _slice(volume: np.ndarray, index: int, axis: int) -> np.ndarray:
    return np.take(volume, index, axis=axis)


def _aspect(spacing: Sequence[float] | None, axis: int) -> float:
    """imshow aspect = row spacing / column spacing of the displayed plane."""
    if spacing is None:
        return 1.0
    rest = [s for i, s in enumerate(spacing) if i != axis]
    return float(rest[0]) / float(rest[1])


def show_slices(volume: np.ndarray, indices: Sequence[int] | None = None, axis: int = 0,
                window: str | tuple[float, float] | None = "lung", overlay: np.ndarray | None = None,
                spacing: Sequence[float] | None = None, titles: Sequence[str] | None = None,
                ncols: int = 4, size: float = 2.6, cmap: str = "gray", overlay_cmap: str = "autumn"):
    """A grid of slices (evenly spaced through the volume by default), with an optional mask/heat overlay.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    shown = _display(volume, window)
    n = shown.shape[axis]
    if indices is None:
        indices = np.linspace(0, n - 1, num=min(ncols * 2, n)).round().astype(int).tolist()
    for i in indices:
        if not 0 <= i < n:
            raise IndexError(f"slice {i} is outside 0..{n - 1} along axis {axis}")
    ncols = min(ncols, len(indices))
    nrows = -(-len(indices) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(indices):
            continue
        i = indices[k]
        ax.imshow(_slice(shown, i, axis), cmap=cmap, vmin=0, vmax=1, aspect=_aspect(spacing, axis))
        if overlay is not None:
            ov = _slice(np.asarray(overlay, dtype=np.float32), i, axis)
            ax.imshow(np.ma.masked_where(ov <= 0, ov), cmap=overlay_cmap, alpha=0.45,
                      aspect=_aspect(spacing, axis))
        ax.set_title(titles[k] if titles else f"slice {i}", fontsize=9)
    fig.tight_layout()
    return fig


def slice_animation(volume: np.ndarray, axis: int = 0, window: str | tuple[float, float] | None = "lung",
                    overlay: np.ndarray | None = None, spacing: Sequence[float] | None = None, step: int = 1,
                    size: float = 4.0, interval_ms: int = 120, title: str = ""):
    """A matplotlib ``FuncAnimation`` that steps through the slices (one frame per ``step`` slices)."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    shown = _display(volume, window)
    frames = list(range(0, shown.shape[axis], max(1, step)))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.axis("off")
    aspect = _aspect(spacing, axis)
    image = ax.imshow(_slice(shown, frames[0], axis), cmap="gray", vmin=0, vmax=1, aspect=aspect)
    ov_artist = None
    if overlay is not None:
        overlay = np.asarray(overlay, dtype=np.float32)
        ov = _slice(overlay, frames[0], axis)
        ov_artist = ax.imshow(np.ma.masked_where(ov <= 0, ov), cmap="autumn", alpha=0.45, vmin=0,
                              vmax=max(float(overlay.max()), 1e-8), aspect=aspect)
    label = ax.set_title(f"{title} slice {frames[0]}".strip(), fontsize=10)

    def update(i):
        image.set_data(_slice(shown, i, axis))
        if ov_artist is not None:
            ov = _slice(overlay, i, axis)
            ov_artist.set_data(np.ma.masked_where(ov <= 0, ov))
        label.set_text(f"{title} slice {i}".strip())
        return (image,)

    anim = animation.FuncAnimation(fig, update, frames=frames, interval=interval_ms, blit=False)
    plt.close(fig)  # the animation owns the figure; don't also print it as a static image
    return anim


# matplotlib's player draws its buttons with Font Awesome icons loaded from a CDN; offline they would be blank,
# so each icon is replaced by a plain Unicode symbol.
_PLAYER_ICONS = {
    "fa-minus": "&#8722;", "fa-plus": "+", "fa-fast-backward": "&#8676;", "fa-step-backward": "&#9664;&#10074;",
    "fa-play fa-flip-horizontal": "&#9664;", "fa-pause": "&#10074;&#10074;", "fa-play": "&#9654;",
    "fa-step-forward": "&#10074;&#9654;", "fa-fast-forward": "&#8677;",
}


def _offline_player(html: str) -> str:
    import re

    html = re.sub(r'<link rel="stylesheet"[^>]*font-awesome[^>]*>', "", html)
    for icon, symbol in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="fa {icon}"></i>', symbol)
    return html


def most_informative_slice(volume: np.ndarray, axis: int = 0, overlay: np.ndarray | None = None,
                           window: str | tuple[float, float] | None = "lung") -> int:
    """The slice a viewer should open on: the one with the most overlay (lesion) voxels when ``overlay`` has
    any, else the one whose displayed grey levels are most varied — the highest entropy of a 32-bin histogram,
    i.e. the most kinds of tissue in view (the first slice of a CT is often air or the neck; a plain standard
    deviation prefers a slice that is half body, half air)."""
    if overlay is not None:
        counts = (np.asarray(overlay) > 0).sum(axis=tuple(i for i in range(3) if i != axis))
        if counts.max() > 0:
            return int(np.argmax(counts))
    shown = np.moveaxis(_display(volume, window), axis, 0)
    entropy = []
    for plane in shown:
        hist, _ = np.histogram(plane, bins=32, range=(0.0, 1.0))
        p = hist[hist > 0] / max(hist.sum(), 1)
        entropy.append(float(-(p * np.log(p)).sum()))
    return int(np.argmax(entropy))


def static_slice_viewer(volume: np.ndarray, start: int | None = None, alt: str | None = None, **kwargs):
    """The kernel-free, network-free viewer: ``IPython.display.HTML`` with every slice embedded as PNG.

    It opens on slice ``start`` (default: :func:`most_informative_slice`), and its image carries ``alt`` text
    (default: what the viewer shows and how to use it).
    """
    import re

    from IPython.display import HTML

    axis = kwargs.get("axis", 0)
    step = max(1, kwargs.get("step", 1))
    if start is None:
        start = most_informative_slice(volume, axis=axis, overlay=kwargs.get("overlay"),
                                       window=kwargs.get("window", "lung"))
    n = np.asarray(volume).shape[axis]
    if not 0 <= start < n:
        raise IndexError(f"start slice {start} is outside 0..{n - 1} along axis {axis}")
    frame = start // step
    if alt is None:
        alt = (f"Slice viewer: {n} slices along axis {axis}, opening on slice {frame * step}; "
               "use the buttons or the slider to step through the volume.")
    html = _offline_player(slice_animation(volume, **kwargs).to_jshtml(default_mode="once"))
    html = re.sub(r'<img id="(_anim_img\w+)">', lambda m: f'<img id="{m.group(1)}" alt="{_escape(alt)}">', html)
    # matplotlib's player always starts on frame 0; move it once the player exists (same timeout callback).
    html = re.sub(r"(anim(\w+) = new Animation\([^;]*\);)", lambda m: f"{m.group(1)} anim{m.group(2)}.set_frame({frame});",
                  html, count=1)
    return HTML(html)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def slice_viewer(volume: np.ndarray, spacing: Sequence[float] | None = None, overlay: np.ndarray | None = None,
                 window: str = "lung", size: float = 4.5):
    """Interactive viewer for a live kernel: slice slider, axis buttons and a window picker (ipywidgets)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    volume = np.asarray(volume, dtype=np.float32)
    axis_w = widgets.ToggleButtons(options=[("axial", 0), ("coronal", 1), ("sagittal", 2)], value=0,
                                   description="plane")
    window_w = widgets.Dropdown(options=[*WINDOWS, "min–max"], value=window, description="window")
    index_w = widgets.IntSlider(value=volume.shape[0] // 2, min=0, max=volume.shape[0] - 1, description="slice",
                                continuous_update=True)

    def on_axis(change):
        index_w.max = volume.shape[change["new"]] - 1
        index_w.value = index_w.max // 2

    axis_w.observe(on_axis, names="value")

    def draw(axis, win, index):
        shown = _display(volume, None if win == "min–max" else win)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(_slice(shown, index, axis), cmap="gray", vmin=0, vmax=1, aspect=_aspect(spacing, axis))
        if overlay is not None:
            ov = _slice(np.asarray(overlay, dtype=np.float32), index, axis)
            ax.imshow(np.ma.masked_where(ov <= 0, ov), cmap="autumn", alpha=0.45, aspect=_aspect(spacing, axis))
        ax.set_title(f"slice {index}")
        ax.axis("off")
        plt.show()

    out = widgets.interactive_output(draw, {"axis": axis_w, "win": window_w, "index": index_w})
    return widgets.VBox([widgets.HBox([axis_w, window_w]), index_w, out])
