"""The static viewer is self-contained: no CDN stylesheet, every button labelled."""
import re

import numpy as np

from rrg_lite.viz.slices import show_slices, static_slice_viewer


def test_static_viewer_has_no_network_links_and_all_buttons_labelled():
    html = static_slice_viewer(np.random.default_rng(0).normal(size=(3, 8, 8)), window=None).data
    assert "font-awesome" not in html and "https://" not in html
    assert not re.search(r'<i class="fa', html), "an icon would render blank offline"
    assert html.count("data:image/png;base64") >= 3  # one embedded frame per slice


def test_show_slices_checks_indices():
    import pytest

    with pytest.raises(IndexError, match="slice 9 is outside 0..3"):
        show_slices(np.zeros((4, 5, 5)), indices=[9], window=None)
