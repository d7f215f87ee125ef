"""rrg-lite."""
