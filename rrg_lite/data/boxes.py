"""Box conventions: pixel boxes ``[x1, y1, x2, y2]`` ↔ M4CXR's text boxes (integers 0–100 of a centre-cropped square).

M4CXR writes a box as text, e.g. ``[23,40,51,77]``: coordinates relative to the square, centre-cropped image,
rounded to integers in [0, 100]. The world and MS-CXR-like data give pixel boxes on the full image.
"""
from __future__ import annotations

import re
from typing import Sequence


def to_relative_100(box: Sequence[float], width: int, height: int) -> list[int]:
    """Pixel box on a ``width × height`` image → integers 0–100 on its centre-cropped square (clipped to it)."""
    side = min(width, height)
    ox, oy = (width - side) / 2.0, (height - side) / 2.0
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {list(box)} is empty or inverted")
    out = []
    for v, o in ((x1, ox), (y1, oy), (x2, ox), (y2, oy)):
        out.append(int(round(min(max((v - o) / side, 0.0), 1.0) * 100)))
    return out


def from_relative_100(box: Sequence[int], width: int, height: int) -> list[float]:
    """Inverse of :func:`to_relative_100` (up to rounding)."""
    side = min(width, height)
    ox, oy = (width - side) / 2.0, (height - side) / 2.0
    x1, y1, x2, y2 = box
    return [ox + x1 / 100 * side, oy + y1 / 100 * side, ox + x2 / 100 * side, oy + y2 / 100 * side]


def box_text(box: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in box) + "]"


_BOX = re.compile(r"\[\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\]")


def parse_boxes(text: str) -> list[list[int]]:
    """All ``[x1,y1,x2,y2]`` boxes (0–100) in a text; values above 100 or inverted boxes are left out."""
    out = []
    for m in _BOX.finditer(text):
        b = [int(g) for g in m.groups()]
        if max(b) <= 100 and b[2] > b[0] and b[3] > b[1]:
            out.append(b)
    return out
