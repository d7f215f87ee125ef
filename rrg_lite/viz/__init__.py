"""Figures and viewers: slices, overlays, attention maps, curves; the book's house style and tables.

Importing ``rrg_lite.viz`` applies the house style once (:func:`rrg_lite.viz.style.use_book_style`): figure sizes
and fonts that read at the book's content width, PNGs tagged with their smallest font size, and filters for
warnings that are noise to a reader. Tables: :mod:`rrg_lite.viz.tables`.
"""
from rrg_lite.viz.style import use_book_style

use_book_style()
