"""Parameter sweeps (``_widget/sweep.py``): one stack layer along a labelled axis."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY
from napari_nst._widget.sweep import sweep_values, text_overlay
from tests.helpers import WAIT_MS, iteration, outputs, press_and_wait, reweighted


def test_sweep_fills_one_stack_layer_along_a_labelled_axis(widget, viewer, qtbot, monkeypatch):
    from napari_nst.core import losses

    monkeypatch.setattr(losses, "_CACHE", OrderedDict())
    builds = losses.style_target_builds()
    widget.iterations.value = 3
    widget.sweep_parameter.value = "style_weight"
    widget.sweep_values.value = "0.1, 1, 10"  # normalised units: little style to a lot
    widget.sweep.clicked.emit()
    assert len(widget.queue.jobs) == 2  # the first runs, the others wait
    qtbot.waitUntil(lambda: not widget.running, timeout=3 * WAIT_MS)

    (output,) = outputs(viewer)
    assert output.data.shape == (3, 48, 64, 3) and output.rgb
    assert output.axis_labels[0] == "style_weight: 0.1, 1, 10"
    assert viewer.dims.axis_labels[0] == output.axis_labels[0]  # on the slider
    np.testing.assert_allclose(output.scale, (1, 0.5, 0.5))
    np.testing.assert_allclose(output.translate, (0, 10, -3))
    sweep = output.metadata[RECORD_KEY]["sweep"]
    assert sweep["parameter"] == "style_weight" and sweep["values"] == [0.1, 1, 10]
    assert [r["params"]["style_weight"] for r in sweep["records"]] == [0.1, 1, 10]
    assert all(r["status"] == "done" and r["iteration"] == 3 for r in sweep["records"])
    assert all(output.data[k].std() > 0 for k in range(3))  # every plane written
    assert np.abs(output.data[0].astype(float) - output.data[2]).mean() > 1  # they differ
    assert losses.style_target_builds() - builds == 1  # shared by the three runs

    overlay = text_overlay(viewer)
    viewer.dims.set_point(0, 2)  # scrubbing shows the value on screen
    assert overlay.visible and overlay.text == "style_weight = 10"
    viewer.dims.set_point(0, 0)
    assert overlay.text == "style_weight = 0.1"
    viewer.layers.remove(output)
    assert not overlay.visible


def test_sweep_refuses_what_it_cannot_run(widget, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.sweep.show_error", shown.append)
    widget.sweep_values.value = "1e5, lots"
    widget.sweep.clicked.emit()
    widget.sweep_values.value = "1e5, -1"
    widget.sweep.clicked.emit()
    widget.sweep_values.value = ""
    widget.method.value = "fast"
    widget.sweep.clicked.emit()
    assert len(shown) == 3 and not widget.running and not widget.queue.jobs
    assert "numbers separated by commas" in shown[0] and "style_weight" in shown[1]
    assert "method 'gatys'" in shown[2]


@pytest.mark.parametrize(
    ("parameter", "current", "expected"),
    [
        ("style_weight", 1e6, [1e5, 1e6, 1e7]),
        ("tv_weight", 0.0, [1.0, 10.0, 100.0]),  # around the default (10) when set to 0
        ("style_scale", 6.0, [3.0, 6.0, 8.0]),  # kept in range
        ("iterations", 5, [2, 5, 10]),
    ],
)
def test_blank_sweep_values_are_log_spaced_around_the_current_value(parameter, current, expected):
    assert sweep_values("", parameter, current) == pytest.approx(expected)
    if parameter == "iterations":
        assert all(isinstance(value, int) for value in sweep_values("", parameter, current))


def test_weights_changed_during_a_sweep_keep_the_swept_value(widget, viewer, qtbot):
    widget.iterations.value = 2000
    widget.sweep_values.value = "1e4, 1e5"
    widget.sweep.clicked.emit()
    qtbot.waitUntil(lambda: iteration(widget) >= 2, timeout=WAIT_MS)
    widget.tv_weight.value = 5.0
    qtbot.waitUntil(lambda: reweighted(widget), timeout=WAIT_MS)
    widget.queue[0].cancel.clicked.emit()
    press_and_wait(widget, qtbot, widget.cancel)
    (output,) = outputs(viewer)
    first, second = output.metadata[RECORD_KEY]["sweep"]["records"]
    assert second is None  # removed from the queue before it ran
    (change,) = first["weight_changes"]
    assert change["style_weight"] == 1e4 and change["tv_weight"] == 5.0
