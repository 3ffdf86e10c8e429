"""The dock's universal methods (wct, adain): the controls they show, a run into one
output layer, and the alpha slider that redecodes that layer in place."""

from __future__ import annotations

import numpy as np

from napari_nst._layers import RECORD_KEY
from tests.helpers import run_to_end, shown


def test_wct_shows_its_controls_and_runs_into_one_layer(widget, viewer, qtbot):
    widget.method.value = "wct"
    assert shown(widget, "alpha") and shown(widget, "style")
    assert not shown(widget, "iterations") and not shown(widget, "checkpoint")
    assert not shown(widget, "style_strength")
    assert widget.loss_plot.isHidden()  # one pass per level: no loss curve to draw
    widget.levels.value = "relu2_1,relu1_1"
    output = run_to_end(widget, qtbot, viewer, done=True)
    record = output.metadata[RECORD_KEY]
    assert record["params"]["method"] == "wct" and record["levels"] == ["relu2_1", "relu1_1"]
    assert output.data.shape == viewer.layers["photo"].data.shape
    assert output.data.dtype == np.uint8
    widget.method.value = "gatys"
    assert not shown(widget, "alpha") and shown(widget, "iterations")
    assert not widget.loss_plot.isHidden()


def test_the_alpha_slider_redecodes_the_result_in_place(widget, viewer, qtbot):
    widget.method.value = "adain"
    output = run_to_end(widget, qtbot, viewer, done=True)
    styled = output.data.copy()
    layers = len(viewer.layers)
    widget.alpha.value = 0.0
    qtbot.waitUntil(lambda: widget.session._redecoding is None, timeout=60_000)
    photo = viewer.layers["photo"].data.astype(float)
    # alpha 0: the content reconstructed, closer to it than the styled result.
    assert np.abs(output.data - photo).mean() < np.abs(styled - photo).mean()
    assert len(viewer.layers) == layers  # the same layer, no new one
    record = output.metadata[RECORD_KEY]
    assert record["params"]["alpha"] == 0.0  # one level: exactly a run with alpha 0
