"""The Style Transfer dock widget, driven through its named sub-widgets."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QThreadPool

from napari_nst._layers import RECORD_KEY
from napari_nst._widget import StyleTransferWidget

WAIT_MS = 60_000


@pytest.fixture
def widget(make_napari_viewer, qtbot, content_rgb, style_rgb):
    viewer = make_napari_viewer()
    viewer.add_image(content_rgb, name="photo", scale=(0.5, 2.0), translate=(10, -3))
    viewer.add_image(style_rgb, name="painting")
    widget = StyleTransferWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Style Transfer")
    widget.content.value = viewer.layers["photo"]
    widget.style.value = viewer.layers["painting"]
    widget.weights.value = "random"
    widget.device.value = "cpu"
    widget.size.value = 64
    widget.preview_interval = 0.0
    yield widget
    if widget.running:
        widget.cancel.clicked.emit()
        qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)


def _outputs(viewer) -> list:
    return [layer for layer in viewer.layers if RECORD_KEY in layer.metadata]


def test_run_streams_previews_into_one_layer_and_ends_done(widget, qtbot, content_rgb):
    viewer = widget._viewer
    widget.iterations.value = 12
    updates: list[int] = []
    viewer.layers.events.inserted.connect(
        lambda event: event.value.events.data.connect(lambda _: updates.append(1))
    )
    widget.run.clicked.emit()
    assert not widget.run.enabled and widget.cancel.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    (output,) = _outputs(viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["iteration"] == 12
    assert len(record["history"]) == 12
    assert record["params"]["iterations"] == 12 and record["params"]["weights"] == "random"
    assert record["weights"]["source"] == "random" and record["device"] == "cpu"
    assert record["sources"] == {"content": "photo", "style": "painting"}
    assert 1 + len(updates) >= 3  # the layer's first image plus in-place updates
    assert output.data.shape == content_rgb.shape and output.rgb
    assert output.name == "photo × painting"
    np.testing.assert_allclose(output.scale, (0.5, 2.0))
    np.testing.assert_allclose(output.translate, (10, -3))
    assert widget.run.enabled and not widget.cancel.enabled


def test_cancel_keeps_the_best_image_and_leaves_nothing_running(widget, qtbot):
    viewer = widget._viewer
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: widget._record and widget._record.iteration >= 3, timeout=WAIT_MS)
    widget.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    (output,) = _outputs(viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "cancelled"
    assert 3 <= record["iteration"] < 2000
    assert output.data.std() > 0
    assert widget.run.enabled and not widget.cancel.enabled
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def test_inputs_are_byte_identical_after_a_run(widget, qtbot, content_rgb, style_rgb):
    widget.iterations.value = 3
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    np.testing.assert_array_equal(widget._viewer.layers["photo"].data, content_rgb)
    np.testing.assert_array_equal(widget._viewer.layers["painting"].data, style_rgb)


def test_gray_content_uses_the_layer_contrast_limits(widget, qtbot):
    viewer = widget._viewer
    gray = np.random.default_rng(0).integers(0, 4000, (48, 48)).astype(np.uint16)
    layer = viewer.add_image(gray, name="mri", contrast_limits=(100, 3000))
    widget.reset_choices()
    widget.content.value = layer
    job, _ = widget._prepare()
    assert job.options.contrast_limits == (100.0, 3000.0)
    np.testing.assert_array_equal(layer.data, gray)


def test_current_slice_of_a_stack_is_used(widget, qtbot):
    viewer = widget._viewer
    stack = np.zeros((3, 40, 40), np.float32)
    stack[1] = np.random.default_rng(0).random((40, 40))
    layer = viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 1)
    widget.reset_choices()
    widget.content.value = layer
    job, _ = widget._prepare()
    assert job.layout.shape == (40, 40) and job.content.std() > 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda w: w._viewer.layers.clear(), "choose a content image layer"),
        (lambda w: setattr(w.style, "value", w.content.value), "same layer"),
        (lambda w: setattr(w.size, "value", 32), "the shorter side must be at least 32 px"),
    ],
)
def test_bad_choices_are_notified_not_raised(widget, qtbot, monkeypatch, setup, message):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.show_error", shown.append)
    setup(widget)
    widget.run.clicked.emit()
    assert not widget.running
    assert len(shown) == 1 and message in shown[0]


def test_engine_errors_end_the_run_as_failed_with_a_notification(widget, qtbot, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.show_error", shown.append)
    widget.weights.value = "file"
    widget.weights_file.value = "/nonexistent/vgg19.pth"
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert len(shown) == 1 and "weights file not found" in shown[0]
    assert widget._record.status == "failed"
    assert widget.run.enabled
