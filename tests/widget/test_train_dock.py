"""The Train Fast Style dock (``_train_widget.py``)."""

from __future__ import annotations

import numpy as np

from tests.helpers import WAIT_MS


def test_train_dock_trains_on_a_stack_layer_and_cancel_keeps_the_model(
    widget, viewer, qtbot, tmp_path, content_rgb
):
    from napari_nst._train_widget import TrainWidget
    from napari_nst.core.fast import load_checkpoint

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


def test_train_dock_trains_a_decoder_that_the_dock_then_uses(
    widget, viewer, qtbot, tmp_path, content_rgb
):
    from safetensors import safe_open

    from napari_nst._layers import RECORD_KEY
    from napari_nst._train_widget import DECODER
    from napari_nst.core.networks import load_decoders
    from tests.helpers import run_to_end, shown

    stack = np.stack([np.roll(content_rgb, 5 * k, axis=1) for k in range(3)])
    viewer.add_image(stack, name="photos", rgb=True)
    widget.train.clicked.emit()
    trainer = next(w for w in viewer.window.dock_widgets.values() if hasattr(w, "history"))
    trainer.reset_choices()
    trainer.kind.value = DECODER

    def seen(control):
        return control.native.isVisibleTo(trainer.native)

    assert not seen(trainer.style) and seen(trainer.level)
    assert (trainer.image_size.value, trainer.batch_size.value) == (128, 8)  # its defaults
    trainer.level.value = "relu1_1"
    trainer.images.value = viewer.layers["photos"]
    decoder = tmp_path / "mine" / "relu1_1.safetensors"
    trainer.output.value = decoder
    trainer.steps.value, trainer.image_size.value, trainer.batch_size.value = 500, 32, 2
    trainer.checkpoint_every.value, trainer.device.value = 1000, "cpu"
    trainer.run.clicked.emit()
    qtbot.waitUntil(lambda: len(trainer.history) >= 2, timeout=WAIT_MS)
    trainer.cancel.clicked.emit()  # keeps a usable decoder
    qtbot.waitUntil(lambda: not trainer.running, timeout=WAIT_MS)
    assert trainer.saved == str(decoder) and 2 <= len(trainer.history) < 500
    assert all("psnr" in losses for losses in trainer.history)
    with safe_open(str(decoder), "pt") as handle:
        assert handle.metadata()["level"] == "relu1_1"
    assert load_decoders(str(decoder.parent)).levels == ("relu1_1",)
    widget.method.value = "adain"
    assert shown(widget, "decoders")
    widget.decoders.value = str(decoder.parent)
    output = run_to_end(widget, qtbot, viewer, done=True)
    assert output.metadata[RECORD_KEY]["decoders"]["source"] == str(decoder.parent)
