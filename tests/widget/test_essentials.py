"""The essentials (``_widget/essentials.py``): presets and the strength slider fill the
weight boxes."""

from __future__ import annotations

import math

import pytest


def test_presets_and_the_strength_slider_fill_the_weight_boxes(widget):
    from napari_nst.core.options import DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, PRESETS

    widget.preset.value = "bold"
    bold = PRESETS["bold"]["style_weight"]
    assert widget.style_weight.value == bold and widget.tv_weight.value == DEFAULT_TV_WEIGHT
    assert widget.style_scale.value == 1.0
    strength = 2 * math.log10(bold / DEFAULT_STYLE_WEIGHT)  # √10 per unit
    assert widget.style_strength.value == pytest.approx(strength)
    widget.preset.value = "texture only"
    assert widget.content_weight.value == 0 and widget.style_weight.value == DEFAULT_STYLE_WEIGHT
    widget.style_strength.value = 1.0
    assert widget.style_weight.value == pytest.approx(10**0.5 * DEFAULT_STYLE_WEIGHT, abs=1e-4)
    widget.style_strength.value = -2.0
    assert widget.style_weight.value == pytest.approx(0.1 * DEFAULT_STYLE_WEIGHT)
    options = widget.options()
    assert options["preset"] == "texture only" and options["style_weight"] == pytest.approx(0.1)
