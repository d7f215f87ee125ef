"""The book's house style (rrg_lite.viz.style) and table helper (rrg_lite.viz.tables)."""
from __future__ import annotations

import re
from io import BytesIO

import numpy as np
import pandas as pd
import pytest

import rrg_lite.viz  # noqa: F401  (applies the style)
from rrg_lite.viz import style, tables
from rrg_lite.viz.slices import most_informative_slice, static_slice_viewer


# ---- figures -------------------------------------------------------------------------------------------------

def test_full_width_figure_fills_the_column_and_its_text_reads():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=style.figsize())
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set_title("title")
    ax.legend()
    data, size = style.figure_png(fig)
    plt.close(fig)
    # tight bbox trims/extends a little; the figure is about one column wide and never much wider
    assert 0.75 * style.CONTENT_PX < size["width"] <= 1.05 * style.CONTENT_PX
    meta = style._png_text(data)
    assert float(meta["rrg:dpi"]) == style.DPI * style.SCALE
    assert float(meta["rrg:min_font_pt"]) >= style.MIN_FONT_PT
    from PIL import Image

    natural = Image.open(BytesIO(data)).size[0]
    shown = min(size["width"], style.CONTENT_PX)
    px = style.rendered_font_px(float(meta["rrg:min_font_pt"]), float(meta["rrg:dpi"]), natural, shown)
    assert px >= style.MIN_CSS_PX, px


def test_min_font_finds_the_smallest_text_including_ticks():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    ax.text(0.5, 0.5, "tiny", fontsize=5)
    assert style.min_font_pt(fig) == 5
    ax.texts[0].remove()
    assert style.min_font_pt(fig) == pytest.approx(9)  # tick labels, the style's smallest default
    plt.close(fig)


def test_a_wide_old_style_figure_is_caught():
    """A 16-inch figure (chapter 2's label bars before the style) shows at ~43 % and its 7-pt text at < 10 px."""
    px = style.rendered_font_px(7, dpi=100, natural_px=1592, shown_px=688)
    assert px < style.MIN_CSS_PX


def test_figsize_and_subplots_are_fractions_of_the_column():
    import matplotlib.pyplot as plt

    assert style.figsize(0.5, 1.0) == (style.FULL_WIDTH / 2, style.FULL_WIDTH / 2)
    with pytest.raises(ValueError):
        style.figsize(1.5)
    fig, axes = style.subplots(2, 3, panel_aspect=1.0)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(style.FULL_WIDTH) and h == pytest.approx(2 * style.FULL_WIDTH / 3)
    plt.close(fig)


def test_empty_figure_gives_no_png():
    import matplotlib.pyplot as plt

    fig = plt.figure()
    assert style.figure_png(fig) is None
    plt.close(fig)


def test_noise_filters_hide_only_the_listed_warnings():
    import warnings

    style.filter_noise()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        style.filter_noise()  # re-installed inside the recording context
        warnings.warn("a real problem", UserWarning)
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("`something_else` is deprecated", FutureWarning)
    assert [str(w.message) for w in caught] == ["a real problem", "`something_else` is deprecated"]


# ---- slice viewer --------------------------------------------------------------------------------------------

def test_viewer_opens_on_the_informative_slice_and_has_alt_text():
    vol = np.zeros((6, 8, 8), dtype=np.float32)
    vol[4, 2:6, 2:6] = 1.0
    assert most_informative_slice(vol, window=None) == 4
    mask = np.zeros_like(vol)
    mask[2, 3, 3] = 1
    assert most_informative_slice(vol, overlay=mask, window=None) == 2
    html = static_slice_viewer(vol, window=None).data
    assert re.search(r'<img id="_anim_img\w+" alt="Slice viewer: 6 slices[^"]*slice 4', html)
    assert re.search(r"anim\w+\.set_frame\(4\);", html)
    with pytest.raises(IndexError):
        static_slice_viewer(vol, start=9, window=None)


# ---- numbers and tables --------------------------------------------------------------------------------------

@pytest.mark.parametrize("x, decimals, text", [
    (0.41234, 3, "0.412"), (-2.544e-03, 3, "-0.003"), (1e-5, 3, "<0.001"), (-1e-5, 3, ">-0.001"),
    (12, 3, "12"), (np.int64(7), 3, "7"), (None, 3, "—"), (float("nan"), 3, "—"), (pd.NA, 3, "—"),
    (-0.0004, 2, ">-0.01"), (400.0, None, "400"), (0.25, None, "0.25"), (1e-7, None, "0.0000001"),
    (True, 3, "yes"), (float("inf"), 3, "∞"),
])
def test_fmt_number(x, decimals, text):
    assert tables.fmt_number(x, decimals) == text


def test_no_scientific_notation_ever():
    for x in (1e-12, 3.2e-8, 1.5e12, -7e-9):
        for d in (None, 2, 4):
            assert "e" not in tables.fmt_number(x, d).lower()


def test_interval_and_p():
    assert tables.fmt_interval(0.4123, 0.3981, 0.4262) == "0.412 [0.398, 0.426]"
    assert tables.fmt_interval(0.5, None, None) == "0.500"
    assert tables.fmt_interval(None, 0.1, 0.2) == "—"
    assert tables.fmt_p(1 / 301, resamples=300) == "≤ 0.0033 (floor of 300 resamples)"
    assert tables.fmt_p(0.04, resamples=300) == "0.040"
    assert tables.fmt_p(0.0001) == "<0.001"


def test_table_has_no_none_nan_and_explains_the_dash():
    df = pd.DataFrame({"size_mm": [12.3, None, np.nan], "kind": ["nodule", "effusion", "edema"]})
    t = tables.table(df, decimals=1, na_reason="no size for a diffuse finding")
    cells = t.cells()
    assert cells[:2] == ["12.3", "nodule"] and cells[2] == "—"
    html = t._repr_html_()
    assert "None" not in html and "NaN" not in html and "nan" not in html
    assert "— = no size for a diffuse finding" in html
    assert "— = no size" in str(t)


def test_table_without_missing_cells_has_no_note():
    t = tables.table(pd.DataFrame({"a": [0.1, 0.2]}))
    assert t.note is None and "—" not in t._repr_html_()


def test_wide_one_row_table_is_turned_into_key_value_rows():
    row = {f"knob_{i:02d}": float(i) for i in range(27)}
    df = pd.DataFrame([row], index=["default"])
    df.columns.name = "knob"
    t = tables.table(df, decimals=None)
    assert t.shape == (27, 1)
    cols, labels, rows = t.blocks[0]
    assert cols == ["default"] and labels[0] == "knob_00" and rows[3] == ["3"]
    assert t.index_name == "knob"


def test_wide_many_row_table_is_split_into_blocks_that_fit():
    df = pd.DataFrame(np.arange(40 * 30, dtype=float).reshape(40, 30) / 7, columns=[f"metric {i}" for i in range(30)])
    t = tables.table(df)
    assert len(t.blocks) > 1
    for cols, labels, rows in t.blocks:
        est = sum(tables._width_chars([r[j] for r in rows], c, t.wrap) for j, c in enumerate(cols))
        assert est * tables.CHAR_PX <= style.CONTENT_PX
    assert "columns 1–" in t._repr_html_()
    # without an index the first column names the rows of every block
    assert t.index_name == "metric 0" and all(labels == t.blocks[0][1] for _, labels, _ in t.blocks)
    assert sum(len(b[0]) for b in t.blocks) == 29


def test_long_text_cells_wrap_instead_of_widening():
    df = pd.DataFrame({"tag": ["comparison"], "sentence": ["Compared with the prior radiograph " * 4]})
    html = tables.table(df)._repr_html_()
    assert "white-space:normal" in html and "overflow-wrap:anywhere" in html


def test_kv_table_of_a_profile():
    from rrg_lite.profiles import load_profile

    t = tables.kv_table(load_profile("images"), na_reason="the chapter's synthetic default")
    text = str(t)
    assert "n_slices" in text and "Profile(" not in repr(t)
    assert "— = the chapter's synthetic default" in text
    assert "None" not in t._repr_html_()


def test_range_index_is_not_shown_but_a_named_index_is():
    t = tables.table(pd.DataFrame({"a": [1, 2]}))
    assert t.blocks[0][1] == []
    t = tables.table(pd.DataFrame({"a": [1, 2]}, index=pd.Index(["x", "y"], name="row")))
    assert t.blocks[0][1] == ["x", "y"] and t.index_name == "row"


def test_fmt_cell_formats_dicts_and_float32_noise():
    counters = {"cases": 384, "pairs": 182, "dropped": {"best_zero": 202}, "mean_score_gap": 0.2850099839110829}
    assert tables.fmt_cell(counters) == "cases: 384, pairs: 182, dropped: best_zero: 202, mean_score_gap: 0.285"
    assert tables.fmt_cell([np.float32(0.333), np.float32(0.334)], 3) == "(0.333, 0.334)"
