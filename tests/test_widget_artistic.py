"""The widget's artistic controls fill the weights and reach the run record."""

from __future__ import annotations

import math
import os

import pytest
import torch

from napari_nst._layers import RECORD_KEY
from tests.conftest import WAIT_MS


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


def test_artistic_options_reach_the_run_record(widget, qtbot):
    widget.iterations.value = 3
    widget.preserve_color.value = "luminance"
    widget.style_scale.value = 0.75
    widget.early_stop_tol.value = 0.05
    widget.pyramid.value = "off"
    cores = os.cpu_count() or 1
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = [layer for layer in widget._viewer.layers if RECORD_KEY in layer.metadata]
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["luminance_only"] is True
    params = record["params"]
    assert params["preserve_color"] == "luminance" and params["style_scale"] == 0.75
    assert params["early_stop_tol"] == 0.05 and params["preset"] is None
    assert params["pyramid"] == "off"
    # The run leaves a core to napari's main thread, and says how many it used.
    from napari_nst._torch_in_gui import run_threads

    assert record["threads"] == run_threads() == max(1, min(torch.get_num_threads(), cores - 1))


def test_artistic_controls_are_for_the_optimisation_only(widget):
    controls = (
        "preset", "style_strength", "style_scale", "preserve_color", "early_stop_tol", "pyramid"
    )  # fmt: skip
    assert all(getattr(widget, name).native.isVisibleTo(widget.native) for name in controls)
    widget.method.value = "fast"
    assert not any(getattr(widget, name).native.isVisibleTo(widget.native) for name in controls)
