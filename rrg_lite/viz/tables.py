"""Tables for the book: numbers at the precision that matters, intervals as ``0.412 [0.398, 0.426]``, no
``None``/``NaN`` cells, no scientific notation, and tables that fit the page.

- :func:`fmt_number`, :func:`fmt_interval`, :func:`fmt_p` format one value (fixed decimals; ``—`` for a missing one).
- :func:`table` renders a DataFrame as HTML under these rules and returns a :class:`BookTable` (shown by Jupyter
  and by the book; ``str()`` gives a plain-text version). A missing cell is shown as ``—`` and the table says why
  (``na_reason``). A table wider than the page first wraps its text cells (at 36, then 24, then 16 characters);
  if it still does not fit, a short table (one row, or ≤ 3 rows with more columns) is turned on its side (a
  1 × 27 knob table becomes 27 key/value rows), and any other is split into column blocks that each repeat the
  row labels.
- :func:`kv_table` shows a mapping (a profile, a config, a dict of results) as two columns: key, value.

Widths are estimated in characters: the book's tables use a 16 px font, about 9 px per character (measured in
Chromium), and the output column is :data:`rrg_lite.viz.style.CONTENT_PX` px wide, so ~76 characters of cells fit,
padding included. Headers may break inside a long word (``output_tokens``) rather than widen the table.
"""
from __future__ import annotations

import html as _html
import math
import numbers
from typing import Any, Mapping, Sequence

from rrg_lite.viz.style import CONTENT_PX

__all__ = ["MISSING", "fmt_number", "fmt_interval", "fmt_p", "fmt_cell", "BookTable", "table", "kv_table"]

MISSING = "—"
CHAR_PX = 9.0           # average glyph width of the table font (16 px in sphinx-book-theme 1.3, measured)
CELL_PAD_CHARS = 2.5    # left + right padding of a cell, in characters
WRAP_CHARS = 36         # text cells longer than this wrap (at spaces) instead of widening the table


def _is_missing(x: Any) -> bool:
    if x is None:
        return True
    if isinstance(x, float) and math.isnan(x):
        return True
    try:
        import pandas as pd

        return bool(pd.isna(x)) if not isinstance(x, (list, tuple, dict, set)) else False
    except (TypeError, ValueError, ImportError):
        return False


def fmt_number(x: Any, decimals: int | None = 3) -> str:
    """A number with ``decimals`` fixed decimals (integers as integers, never scientific); ``—`` if missing.
    ``decimals=None`` keeps the value as given (``400``, ``0.5``; for configs).

    A value that rounds to zero but is not zero keeps its sign and says so (``<0.001`` / ``>-0.001``), so a
    small effect never reads as exactly nothing.
    """
    if _is_missing(x):
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):d}"
    if not isinstance(x, numbers.Real):
        return str(x)
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if decimals is None:  # as given: the shortest decimals that round-trip, still never scientific
        import numpy as np

        return np.format_float_positional(x, trim="-")
    step = 10.0 ** -decimals
    if x != 0 and abs(x) < step / 2:
        return f"<{step:.{decimals}f}" if x > 0 else f">-{step:.{decimals}f}"
    out = f"{x:.{decimals}f}"
    return "0" + out[2:] if out.startswith("-0") and float(out) == 0 else out


def fmt_interval(value: Any, low: Any, high: Any, decimals: int = 3) -> str:
    """``0.412 [0.398, 0.426]``; ``—`` when the value is missing, the bare value when the interval is."""
    if _is_missing(value):
        return MISSING
    if _is_missing(low) or _is_missing(high):
        return fmt_number(value, decimals)
    return f"{fmt_number(value, decimals)} [{fmt_number(low, decimals)}, {fmt_number(high, decimals)}]"


def fmt_p(p: Any, resamples: int | None = None, decimals: int = 3) -> str:
    """A p-value. With ``resamples`` (permutations or bootstrap draws), a p at the test's floor
    ``1 / (resamples + 1)`` is written as a bound — it is the smallest value the test can give, not a measurement:
    ``≤ 0.0033 (floor of 300 resamples)``."""
    if _is_missing(p):
        return MISSING
    p = float(p)
    if resamples is not None:
        floor = 1.0 / (resamples + 1)
        if p <= floor * (1 + 1e-9):
            return f"≤ {floor:.2g} (floor of {resamples} resamples)"
    if p < 10.0 ** -decimals:
        return f"<{10.0 ** -decimals:.{decimals}f}"
    return f"{p:.{decimals}f}"


def fmt_cell(x: Any, decimals: int | None = 3) -> str:
    """Any cell: numbers via :func:`fmt_number`, sequences as ``a, b``, text as is."""
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(fmt_cell(v, decimals) for v in x) + ")" if x else "()"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {fmt_cell(v, decimals)}" for k, v in x.items()) or "{}"
    if isinstance(x, (numbers.Number, type(None))) or _is_missing(x):
        return fmt_number(x, decimals)
    try:  # numpy scalars and 0-d arrays
        import numpy as np

        if isinstance(x, np.generic):
            return fmt_number(x.item(), decimals)
        if isinstance(x, np.ndarray):
            return fmt_cell(x.tolist(), decimals)
    except ImportError:  # pragma: no cover
        pass
    return str(x)


class BookTable:
    """An HTML table (``_repr_html_``) plus a plain-text version (``__str__``); the blocks of a split table."""

    def __init__(self, blocks: list[tuple[list[str], list[str], list[list[str]]]], index_name: str = "",
                 caption: str | None = None, note: str | None = None, wrap: int = WRAP_CHARS,
                 numbers_right: bool = True):
        self.blocks = blocks          # [(column names, row labels, cells as rows)]
        self.numbers_right = numbers_right   # False for key/value tables: one column of mixed values reads left
        self.wrap = wrap              # text cells longer than this many characters wrap
        self.index_name = index_name
        self.caption = caption
        self.note = note

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the table as shown (all blocks together)."""
        if not self.blocks:
            return (0, 0)
        return (len(self.blocks[0][1]), sum(len(b[0]) for b in self.blocks))

    def cells(self) -> list[str]:
        return [c for _, _, rows in self.blocks for row in rows for c in row]

    def _block_html(self, cols, index, rows) -> str:
        esc = _html.escape
        # a div inside the cell: browsers ignore max-width on table cells themselves
        wrap_div = f'<div style="white-space:normal;overflow-wrap:anywhere;max-width:{self.wrap}ch">'

        head = "".join(f'<th style="text-align:right;white-space:normal;overflow-wrap:anywhere">{esc(c)}</th>'
                       for c in cols)
        idx_head = f'<th style="text-align:left">{esc(self.index_name)}</th>' if index else ""
        body = []
        for label, row in zip(index or [None] * len(rows), rows):
            tds = []
            for c in row:
                if _looks_numeric(c) and self.numbers_right:
                    tds.append(f'<td style="text-align:right;white-space:nowrap">{esc(c)}</td>')
                elif len(c) > self.wrap:
                    tds.append(f'<td style="text-align:left">{wrap_div}{esc(c)}</div></td>')
                else:
                    tds.append(f'<td style="text-align:left">{esc(c)}</td>')
            th = f'<th style="text-align:left;white-space:normal">{esc(label)}</th>' if label is not None else ""
            body.append(f"<tr>{th}{''.join(tds)}</tr>")
        return (f'<table class="dataframe rrg-table" style="max-width:100%;table-layout:auto">'
                f"<thead><tr>{idx_head}{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def _repr_html_(self) -> str:
        parts = ['<div class="rrg-table-wrap" style="max-width:100%">']
        if self.caption:
            parts.append(f'<p style="margin:0 0 .3em 0"><strong>{_html.escape(self.caption)}</strong></p>')
        for k, (cols, index, rows) in enumerate(self.blocks):
            if len(self.blocks) > 1:
                parts.append(f'<p style="margin:.4em 0 .1em 0;font-size:90%">columns '
                             f'{sum(len(b[0]) for b in self.blocks[:k]) + 1}–'
                             f'{sum(len(b[0]) for b in self.blocks[:k + 1])} of {self.shape[1]}</p>')
            parts.append(self._block_html(cols, index, rows))
        if self.note:
            parts.append(f'<p style="margin:.2em 0 0 0;font-size:90%">{_html.escape(self.note)}</p>')
        parts.append("</div>")
        return "".join(parts)

    def __str__(self) -> str:
        lines = [self.caption] if self.caption else []
        for cols, index, rows in self.blocks:
            header = ([self.index_name] if index else []) + list(cols)
            table_rows = [([label] if index else []) + list(r) for label, r in zip(index or [None] * len(rows), rows)]
            widths = [max(len(str(x)) for x in col) for col in zip(header, *table_rows)]
            lines.append("  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip())
            lines.extend("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in table_rows)
            lines.append("")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines).rstrip()

    def __repr__(self) -> str:  # a cell ending in a table shows the table, never an object repr
        return str(self)


def _looks_numeric(s: str) -> bool:
    """A number or an interval (right-aligned, never wrapped); text with words in it is not."""
    if "(" in s:
        return False
    t = s.replace(",", "").replace("[", " ").replace("]", " ").replace("<", "").replace(">", "").replace("≤", "")
    t = t.split("(")[0].strip()
    if not t or t == MISSING:
        return False
    try:
        [float(v) for v in t.split()]
        return True
    except ValueError:
        return False


def _width_chars(values: Sequence[str], header: str, wrap: int = WRAP_CHARS) -> float:
    """Estimated width of one column in characters: the widest cell (text longer than ``wrap`` wraps; numbers
    never do) or the header's longest word (headers wrap at spaces), plus padding."""
    cell = max((len(v) if _looks_numeric(v) else min(len(v), wrap) for v in values), default=0)
    head = max((len(w) for w in str(header).split()), default=0)
    return max(cell, head) + CELL_PAD_CHARS


def table(df, decimals: int | None | Mapping[str, int | None] = 3, *, index: bool = True, na_reason: str | None = None,
          caption: str | None = None, max_px: float = CONTENT_PX, transpose: bool | None = None) -> BookTable:
    """``df`` (a pandas DataFrame, or anything ``pd.DataFrame`` accepts) as a :class:`BookTable`.

    Args:
        decimals: fixed decimals for every numeric column, or per column name (others: 3); None = as given.
        index: show the row index (a default RangeIndex is never shown).
        na_reason: why a cell can be missing, shown under the table as ``— = <reason>`` when one is; without it
            a table with missing cells says ``— = not applicable``.
        caption: a line above the table.
        max_px: the width the table must fit (CSS px).
        transpose: True/False forces; None turns a too-wide table with fewer rows than columns on its side.
    """
    import pandas as pd

    df = df if isinstance(df, pd.DataFrame) else pd.DataFrame(df)
    show_index = index and not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
                                and df.index.name is None)
    budget = max_px / CHAR_PX

    def dec(col) -> int | None:
        if isinstance(decimals, Mapping):
            return decimals.get(col, 3)
        return decimals

    def render(frame) -> tuple[list[str], list[str], list[list[str]], bool]:
        cols = [str(c) for c in frame.columns]
        rows, missing = [], False
        for _, r in frame.iterrows():
            row = []
            for c, v in zip(frame.columns, r.tolist()):
                missing |= _is_missing(v) and not isinstance(v, (list, tuple, dict))
                row.append(fmt_cell(v, dec(c)))
            rows.append(row)
        labels = [fmt_cell(i, 3) for i in frame.index] if show_index_ else []
        return cols, labels, rows, missing

    def width(cols, labels, rows, wrap=WRAP_CHARS) -> float:
        total = _width_chars(labels, "", wrap) if labels else 0.0
        for j, c in enumerate(cols):
            total += _width_chars([r[j] for r in rows], c, wrap)
        return total

    show_index_ = show_index
    cols, labels, rows, missing = render(df)
    index_name = str(df.index.name or "") if show_index else ""
    wraps = (WRAP_CHARS, 24, 16)
    fits = next((w for w in wraps if width(cols, labels, rows, w) <= budget), None)
    if transpose is None:
        # A short, wide table (a 1 × 27 knob table) reads better on its side, when that fits.
        transpose = fits is None and (len(df) == 1 or len(df) <= 3 < len(df.columns))
    if transpose:
        # Each column becomes a row; cells were formatted per original column so its decimals still apply.
        if labels:
            heads = labels
        elif len(df) == 1:
            heads = ["value"]
        else:
            heads = [str(i) for i in range(len(df))]
        t_rows = [[rows[i][j] for i in range(len(rows))] for j in range(len(cols))]
        cols, labels, rows = heads, cols, t_rows
        index_name = str(df.columns.name or "")
        fits = next((w for w in wraps if width(cols, labels, rows, w) <= budget), None)
    wrap = fits or wraps[-1]
    blocks = []
    if fits is not None or len(cols) <= 1:
        blocks.append((cols, labels, rows))
    else:  # split the columns into blocks that fit, each repeating the row labels
        if not labels and len(cols) > 1:
            # no index to repeat: the first column names the rows in every block
            index_name, labels = cols[0], [r[0] for r in rows]
            cols, rows = cols[1:], [r[1:] for r in rows]
        start = 0
        while start < len(cols):
            end = start + 1
            while end < len(cols) and width(cols[start:end + 1], labels, [r[start:end + 1] for r in rows],
                                            wrap) <= budget:
                end += 1
            blocks.append((cols[start:end], labels, [r[start:end] for r in rows]))
            start = end
    note = None
    if missing:
        note = f"{MISSING} = {na_reason or 'not applicable'}"
    return BookTable(blocks, index_name=index_name, caption=caption, note=note, wrap=wrap)


def kv_table(mapping: Mapping[str, Any] | Any, decimals: int | None = None, *, caption: str | None = None,
             key: str = "parameter", value: str = "value", na_reason: str | None = None) -> BookTable:
    """A mapping (or an object with ``as_dict()``, like a profile) as a two-column key/value table."""
    if hasattr(mapping, "as_dict"):
        mapping = mapping.as_dict()
    rows = [[str(k), fmt_cell(v, decimals)] for k, v in dict(mapping).items()]
    missing = any(_is_missing(v) for v in dict(mapping).values() if not isinstance(v, (list, tuple, dict)))
    note = f"{MISSING} = {na_reason or 'not set (the default applies)'}" if missing else None
    return BookTable([([value], [r[0] for r in rows], [[r[1]] for r in rows])], index_name=key, caption=caption,
                     note=note, numbers_right=False)
