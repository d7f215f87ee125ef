"""Box conventions: pixel boxes ``[x1, y1, x2, y2]`` ↔ M4CXR's text boxes (integers 0–100 of a centre-cropped square).

M4CXR (Sec. III-A-2) writes a box as text in square brackets with no special tokens, e.g. ``[23,40,51,77]``:
top-left and bottom-right corners relative to the preprocessed image, rounded to integers in [0, 100]. The
preprocessing is a short-side centre crop to a square (official code), so a pixel box on a ``W × H`` image maps
through the centred ``min(W, H)`` square and is clipped to it. The world and MS-CXR-like data give pixel boxes on
the full image.

=========================  ======================================================================================
``to_relative_100``        pixel box -> 0–100 integers on the centre square (clipped); empty/inverted -> ValueError
``from_relative_100``      the inverse (up to rounding)
``box_text``               ``[x1,y1,x2,y2]`` (no spaces, as M4CXR writes it); ``boxes_text`` joins several with ", "
``box_to_text``            pixel box -> text in one step
``is_valid_box_100``       four integers in [0, 100] with x1 < x2 and y1 < y2 (a box that survives rounding)
``parse_boxes``            every valid box in a text (invalid ones left out silently — use it to *find* boxes)
``parse_box``              the first valid box of a model's answer, or None; ``strict=True`` raises and says why
``parse_labeled_boxes``    a multi-finding answer ``"effusion [1,2,3,4], [5,6,7,8], nodule [..]"`` ->
                           ``[("effusion", box), ("effusion", box), ("nodule", box)]``
=========================  ======================================================================================

Parsing is tolerant of spaces (``[ 1, 2 ,3,4 ]``) and of text around the box ("Yes. [1,2,3,4]."); values above
100, negative or decimal numbers and inverted boxes are not M4CXR boxes.
"""
from __future__ import annotations

import re
from typing import Sequence

__all__ = ["to_relative_100", "from_relative_100", "box_text", "boxes_text", "box_to_text", "is_valid_box_100",
           "parse_boxes", "parse_box", "parse_labeled_boxes"]


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


def boxes_text(boxes: Sequence[Sequence[int]]) -> str:
    """Several boxes as M4CXR lists them: ``[1,2,3,4], [5,6,7,8]``."""
    return ", ".join(box_text(b) for b in boxes)


def is_valid_box_100(box: Sequence[int]) -> bool:
    """Four integers in [0, 100] with x1 < x2 and y1 < y2."""
    if len(box) != 4 or not all(isinstance(v, int) and 0 <= v <= 100 for v in box):
        return False
    return box[2] > box[0] and box[3] > box[1]


def box_to_text(box: Sequence[float], width: int, height: int) -> str:
    """Pixel box -> ``"[x1,y1,x2,y2]"`` on the 0–100 scale; a box that rounds to zero width/height is an error."""
    rel = to_relative_100(box, width, height)
    if not is_valid_box_100(rel):
        raise ValueError(f"box {list(box)} on a {width}×{height} image becomes {rel} on the 0–100 scale: empty after "
                         f"cropping to the centre square and rounding")
    return box_text(rel)


_BOX = re.compile(r"\[\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\]")
# anything bracketed with four comma-separated fields, to tell "a malformed box" from "no box at all"
_BOXLIKE = re.compile(r"\[([^\[\]]*,[^\[\]]*,[^\[\]]*,[^\[\]]*)\]")


def parse_boxes(text: str) -> list[list[int]]:
    """All ``[x1,y1,x2,y2]`` boxes (0–100) in a text; values above 100 or inverted boxes are left out."""
    out = []
    for m in _BOX.finditer(text):
        b = [int(g) for g in m.groups()]
        if max(b) <= 100 and b[2] > b[0] and b[3] > b[1]:
            out.append(b)
    return out


def parse_box(text: str, strict: bool = False) -> list[int] | None:
    """The first valid 0–100 box in ``text``; None when there is none (``strict=True``: ValueError saying why)."""
    if not isinstance(text, str):
        if strict:
            raise ValueError(f"parse_box needs the model's answer as a string, got {type(text).__name__}")
        return None
    boxes = parse_boxes(text)
    if boxes:
        return boxes[0]
    if strict:
        shown = text if len(text) <= 80 else text[:77] + "..."
        m = _BOX.search(text)
        if m:
            b = [int(g) for g in m.groups()]
            why = "has a value above 100" if max(b) > 100 else "is inverted or empty (needs x1 < x2 and y1 < y2)"
            raise ValueError(f"box {b} in {shown!r} {why}")
        m = _BOXLIKE.search(text)
        if m:
            raise ValueError(f"[{m.group(1)}] in {shown!r} is not four integers 0–100")
        raise ValueError(f"no [x1,y1,x2,y2] box in {shown!r}")
    return None


def parse_labeled_boxes(text: str) -> list[tuple[str, list[int]]]:
    """Name -> box pairs of a multi-finding grounding answer, in order.

    The text before a box (separators ``,;.`` and spaces stripped, lower-cased) names it; a box with no text of its
    own before it belongs to the previous name (``"effusion [1,2,3,4], [5,6,7,8]"`` gives two effusion boxes). A box
    before any name gets the name ``""``. Invalid boxes are skipped (their name still carries on).
    """
    if not isinstance(text, str):
        raise ValueError(f"parse_labeled_boxes needs a string, got {type(text).__name__}")
    out: list[tuple[str, list[int]]] = []
    name, pos = "", 0
    for m in _BOX.finditer(text):
        between = text[pos:m.start()].strip(" \t\n,;.").lower()
        if between:
            name = " ".join(between.split())
        pos = m.end()
        b = [int(g) for g in m.groups()]
        if max(b) <= 100 and b[2] > b[0] and b[3] > b[1]:
            out.append((name, b))
    return out
