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
