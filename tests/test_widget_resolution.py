"""In napari: results at the size computed, laid over the content; Full size; time left;
errors in the widget's terms."""

from __future__ import annotations

import numpy as np

from napari_nst import stylize
from napari_nst._layers import RECORD_KEY
from napari_nst.core import optim
from tests.conftest import WAIT_MS


def _edges(layer) -> np.ndarray:
    """World coordinates of the outer pixel edges (napari's extent spans pixel centres)."""
    return layer.extent.world + np.array([-0.5, 0.5])[:, None] * np.asarray(layer.scale)


def _run(widget, qtbot, button=None):
    before = set(map(id, widget._viewer.layers))
    (button or widget.run).clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = [layer for layer in widget._viewer.layers if id(layer) not in before]
    return output


def test_a_result_computed_smaller_is_shown_as_computed_over_the_content(widget, qtbot):
    photo = widget._viewer.layers["photo"]  # 48×64 px, scale 0.5, translate (10, -3)
    widget.iterations.value = 2
    widget.size.value = 48
    assert widget.output_size.value == "working"
    output = _run(widget, qtbot)
    assert output.data.shape == (36, 48, 3)  # not resampled
    np.testing.assert_allclose(output.scale, (0.5 * 48 / 36, 0.5 * 64 / 48))
    # The same pixel edges in the world: it lies exactly over the content.
    np.testing.assert_allclose(_edges(output), _edges(photo), atol=1e-9)
    assert "upsampled" not in output.metadata[RECORD_KEY]


def test_full_size_goes_on_at_the_contents_resolution_into_a_new_layer(
    widget, qtbot, content_rgb, style_rgb
):
    widget.iterations.value = 2
    widget.size.value = 48
    small = _run(widget, qtbot)
    assert widget.full_size.enabled and widget.continue_run.enabled
    full = _run(widget, qtbot, widget.full_size)
    assert full.name == f"{small.name} (full size)" and full.data.shape == (48, 64, 3)
    np.testing.assert_allclose(full.scale, (0.5, 0.5))
    record = full.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["iteration"] == 4
    assert record["continued"] == [{"after": 2, "iterations": 2, "size": 64}]
    assert "continued" not in small.metadata[RECORD_KEY]  # the small one keeps its own
    assert not widget.full_size.enabled  # at full size now: nothing more to add
    np.testing.assert_array_equal(stylize(content_rgb, style_rgb, recipe=record), full.data)


def test_the_status_says_how_long_is_left_and_a_long_run_says_so_once(widget, qtbot, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_info", shown.append)
    monkeypatch.setattr(optim, "LONG_RUN", 0.0)  # every run counts as long
    widget.iterations.value = 400
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: "left" in widget.status.value, timeout=WAIT_MS)
    assert "· about" in widget.status.value
    widget.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    notes = [text for text in shown if "will take about" in text]
    assert len(notes) == 1 and "(64 px on cpu)" in notes[0]
    assert "size='" not in notes[0]  # in the widget's terms


def test_an_offline_download_error_speaks_of_the_widgets_controls(
    widget, qtbot, monkeypatch, torch_home
):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    widget.vgg.value = "torchvision"
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (message,) = shown
    assert "could not download the VGG19" in message
    assert "vgg: bundled" in message and "vgg='" not in message
