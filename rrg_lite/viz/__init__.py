"""Figures and viewers: slices, overlays, attention maps, curves."""
