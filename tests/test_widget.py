"""The Style Transfer dock widget, driven through its named sub-widgets."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QThreadPool

from napari_nst._layers import RECORD_KEY
from tests.conftest import WAIT_MS


def _outputs(viewer) -> list:
    return [layer for layer in viewer.layers if RECORD_KEY in layer.metadata]


def test_run_streams_previews_into_one_layer_and_ends_done(widget, qtbot, content_rgb):
    viewer = widget._viewer
    widget.iterations.value = 12
    updates: list[int] = []
    viewer.layers.events.inserted.connect(
        lambda event: event.value.events.set_data.connect(lambda _: updates.append(1))
    )
    widget.run.clicked.emit()
    assert widget.run.text == "Add to queue" and widget.cancel.enabled  # Run now queues
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    (output,) = _outputs(viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["iteration"] == 12
    assert len(record["history"]) == 12
    assert record["params"]["iterations"] == 12 and record["params"]["vgg"] == "random"
    assert record["vgg"]["source"] == "random" and record["device"] == "cpu"
    assert record["sources"] == {"content": "photo", "style": "painting"}
    assert len(updates) >= 3  # previews refresh the one layer in place
    assert output.data.shape == content_rgb.shape and output.rgb
    assert output.name == "photo × painting"
    np.testing.assert_allclose(output.scale, (0.5, 0.5))
    np.testing.assert_allclose(output.translate, (10, -3))
    assert widget.run.enabled and not widget.cancel.enabled


def test_cancel_keeps_the_best_image_and_leaves_nothing_running(widget, qtbot):
    viewer = widget._viewer
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(
        lambda: (r := widget.session.record) is not None and r.iteration >= 3, timeout=WAIT_MS
    )
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
    job = widget.prepare().run
    assert job.options.contrast_limits == (100.0, 3000.0)
    np.testing.assert_array_equal(layer.data, gray)


@pytest.fixture
def volume_layer(widget):
    """A uint16 MRI-like volume, 3 mm slices, windowed 100–3000 by the user."""
    z, y, x = np.mgrid[0:3, 0:217, 0:181]
    data = (1500 + 1000 * np.sin(x / 6.0 + z) * np.cos(y / 9.0) + 300 * z).astype(np.uint16)
    layer = widget._viewer.add_image(
        data, name="mri", scale=(3, 1, 1), translate=(-4, 0, 0), contrast_limits=(100, 3000)
    )
    widget.reset_choices()
    widget.content.value = layer
    widget.iterations.value = 2
    return layer


def _run(widget, qtbot) -> object:
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = _outputs(widget._viewer)
    return output


def test_whole_stack_keeps_shape_geometry_and_window(widget, qtbot, volume_layer):
    widget.output_size.value = "content"  # compared with the content's grid, pixel for pixel
    before = volume_layer.data.copy()
    assert widget.luminance_only.value  # gray content: gray result by default
    widget.stack.value = "all"
    assert not widget.slice_weight.native.isHidden()  # shown with its mode
    output = _run(widget, qtbot)
    assert output.data.shape == (3, 217, 181) and output.data.dtype == np.float32
    assert np.isfinite(output.data).all() and not output.rgb
    assert all(output.data[k].std() > 0 for k in range(3))  # every slice written
    np.testing.assert_allclose(output.scale, (3, 1, 1))
    np.testing.assert_allclose(output.translate, (-4, 0, 0))
    assert tuple(output.contrast_limits) == (100, 3000)  # overlays the source's window
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["planes"] == {"done": 3, "total": 3}
    assert record["iteration"] == 6 and len(record["history"]) == 6
    np.testing.assert_array_equal(volume_layer.data, before)


def test_current_slice_lands_on_the_displayed_slice(widget, qtbot, volume_layer):
    widget.output_size.value = "content"  # compared with the content's grid, pixel for pixel
    viewer = widget._viewer
    viewer.dims.set_point(0, 2.0)  # world z = -4 + 2·3: slice 2
    output = _run(widget, qtbot)
    assert output.data.shape == (1, 217, 181)
    np.testing.assert_allclose(output.translate, (2.0, 0, 0))
    np.testing.assert_allclose(output.scale, (3, 1, 1))
    assert output.metadata[RECORD_KEY]["sources"]["plane"] == [2]
    # Where the viewer shows slice 2, the output is there; one slice away it is not.
    assert output.world_to_data((2.0, 100, 90))[0] == pytest.approx(0)
    assert output.world_to_data((5.0, 100, 90))[0] == pytest.approx(1)  # next slice: outside


def test_a_transposed_view_stylises_the_plane_on_screen(widget, qtbot):
    widget.output_size.value = "content"  # compared with the content's grid, pixel for pixel
    viewer = widget._viewer
    data = np.random.default_rng(0).random((40, 30, 56)).astype(np.float32)
    layer = viewer.add_image(data, name="zyx", scale=(2, 1, 1))
    widget.reset_choices()
    widget.content.value = layer
    widget.iterations.value = 1
    viewer.dims.order = (1, 0, 2)  # rows z, columns x; y is sliced
    viewer.dims.set_point(1, 7.0)
    job = widget.prepare().run
    assert job.layout.plane_shape == (40, 56)
    assert job.shape == (64, 45)  # 80 × 56 physical units at 64 px: no squashed z
    output = _run(widget, qtbot)
    assert output.data.shape == (40, 1, 56)
    np.testing.assert_allclose(output.translate, (0, 7, 0))


def test_cancel_in_a_stack_keeps_the_finished_slices(widget, qtbot, volume_layer):
    widget.stack.value = "all"
    widget.iterations.value = 3
    widget.run.clicked.emit()
    qtbot.waitUntil(
        lambda: widget.session.record is not None and widget.session.record.planes["done"] >= 1,
        timeout=WAIT_MS,
    )
    widget.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = _outputs(widget._viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "cancelled" and 1 <= record["planes"]["done"] < 3
    assert output.data[0].std() > 0  # the finished slice is kept
    assert output.data[2].std() == 0  # the slice never reached stays blank


def test_colour_mode_on_gray_content_gives_rgb(widget, qtbot, volume_layer):
    widget.output_size.value = "content"  # compared with the content's grid, pixel for pixel
    widget.luminance_only.value = False
    output = _run(widget, qtbot)
    assert output.rgb and output.data.shape == (1, 217, 181, 3)
    assert output.data.dtype == np.float32 and output.data.max() <= 1


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
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    setup(widget)
    widget.run.clicked.emit()
    assert not widget.running
    assert len(shown) == 1 and message in shown[0]


def test_engine_errors_end_the_run_as_failed_with_a_notification(widget, qtbot, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    widget.vgg.value = "file"
    widget.vgg_file.value = "/nonexistent/vgg19.pth"
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert len(shown) == 1 and "VGG19 file not found" in shown[0]
    assert widget.session.record.status == "failed"
    assert widget.run.enabled
    # napari's pop-up shows one elided line; the status line keeps the whole message
    assert len(shown[0]) > 60 and widget.status.value == shown[0]
    assert widget.status.native.wordWrap()
    widget.style.value = widget.content.value
    widget.run.clicked.emit()  # refused before it starts: the new error replaces the old
    assert widget.status.value == shown[1] and "same layer" in shown[1]


@pytest.mark.parametrize(
    ("data", "stack", "message"),
    [
        (np.stack([np.ones((40, 40)), np.full((40, 40), np.nan)]), "all", "no finite values"),
        (np.full((40, 40), 5.0), "slice", "constant"),
    ],
)
def test_bad_layer_data_is_notified_and_left_untouched(
    widget, qtbot, monkeypatch, data, stack, message
):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    layer = widget._viewer.add_image(data, name="bad", contrast_limits=(0, 1))
    before = np.array(layer.data, copy=True)
    widget.reset_choices()
    widget.content.value = layer
    widget.stack.value = stack
    if message == "constant":  # the window comes from the data, not the slider
        monkeypatch.setattr("napari_nst._layers.gray_contrast_limits", lambda layer: None)
    widget.run.clicked.emit()
    assert not widget.running
    assert len(shown) == 1 and message in shown[0]
    np.testing.assert_array_equal(layer.data, before)
    assert not _outputs(widget._viewer)


def test_fast_method_applies_a_checkpoint_to_a_whole_stack(widget, qtbot, tmp_path):
    import hashlib

    import torch

    from tests.test_fast import transformer_state

    model = tmp_path / "candy.pth"
    torch.save(transformer_state(), model)
    data = np.random.default_rng(0).random((3, 40, 48)).astype(np.float32)
    layer = widget._viewer.add_image(data, name="stack", contrast_limits=(0, 1))
    widget.reset_choices()
    widget.content.value = layer
    from napari_nst.core.devices import default_size, resolve_device

    widget.size.value = default_size(resolve_device("auto"))  # the default; a chosen one stays
    widget.method.value = "fast"
    assert widget.checkpoint.native.isVisibleTo(widget.native)
    assert not widget.iterations.native.isVisibleTo(widget.native)
    assert not widget.style.native.isVisibleTo(widget.native)  # the model is the style
    assert widget.size.value == 0  # full resolution
    widget.checkpoint.value = model
    widget.stack.value = "all"
    output = _run(widget, qtbot)
    assert output.name == "stack × candy" and output.data.shape == (3, 40, 48)
    assert all(output.data[k].std() > 0 for k in range(3))  # every plane, in order
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["planes"] == {"done": 3, "total": 3}
    assert record["checkpoint"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    widget.method.value = "gatys"
    assert widget.size.value == default_size(resolve_device("auto"))  # back to the default


def test_train_dock_trains_on_a_stack_layer_and_cancel_keeps_the_model(
    widget, qtbot, tmp_path, content_rgb
):
    from napari_nst._train_widget import TrainWidget
    from napari_nst.core.fast import load_checkpoint

    viewer = widget._viewer
    stack = np.stack([np.roll(content_rgb, 5 * k, axis=1) for k in range(3)])
    viewer.add_image(stack, name="photos", rgb=True)
    widget.train.clicked.emit()
    trainer = next(w for w in viewer.window.dock_widgets.values() if hasattr(w, "history"))
    assert isinstance(trainer, TrainWidget)
    trainer.reset_choices()
    trainer.style.value = viewer.layers["painting"]
    trainer.images.value = viewer.layers["photos"]
    trainer.output.value = tmp_path / "model.pth"
    trainer.steps.value, trainer.image_size.value, trainer.batch_size.value = 500, 32, 2
    trainer.vgg.value, trainer.device.value = "random", "cpu"
    trainer.run.clicked.emit()
    qtbot.waitUntil(lambda: len(trainer.history) >= 2, timeout=WAIT_MS)
    trainer.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not trainer.running, timeout=WAIT_MS)
    assert trainer.saved == str(tmp_path / "model.pth")
    assert 2 <= len(trainer.history) < 500
    load_checkpoint(trainer.saved)
    np.testing.assert_array_equal(viewer.layers["photos"].data, stack)
