"""The user's order of events in a fresh process: napari (and OpenGL) first, plugin later.

The rest of the suite imports torch before any OpenGL context exists, which hides
problems that only appear when napari has loaded its GL driver first (Mesa's LLVM
vs triton's). These tests run napari-nst exactly as a user's napari would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import napari
    import numpy as np
    from qtpy.QtCore import QEventLoop, QThreadPool, QTimer

    assert "torch" not in sys.modules
    viewer = napari.Viewer(show=True)
    rng = np.random.default_rng(0)
    viewer.add_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), name="photo")
    viewer.add_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), name="painting")
    _, widget = viewer.window.add_plugin_dock_widget("napari-nst", "Style Transfer")
    widget.content.value = viewer.layers["photo"]
    widget.style.value = viewer.layers["painting"]
    widget.vgg.value = "random"
    widget.size.value = 64

    def wait(signal, condition=lambda *a: True, timeout_ms=120_000):
        loop = QEventLoop()
        signal.connect(lambda *a: condition(*a) and loop.quit())
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()

    widget.iterations.value = 3
    widget.run.clicked.emit()
    wait(widget.session.worker.finished)
    print("first run:", widget.session.record.status, widget.session.record.iteration, flush=True)

    widget.iterations.value = 100_000
    widget.run.clicked.emit()
    wait(widget.session.worker.yielded, lambda step: step.iteration >= 3)
    viewer.close()
    print("closed mid-run; pool idle:", QThreadPool.globalInstance().waitForDone(30_000))
    """
)


CLOSE_MID_RUN = textwrap.dedent(
    """
    import os, time
    import napari
    import numpy as np
    from qtpy.QtCore import QEventLoop, QThreadPool, QTimer

    def wait(signal, condition=lambda *a: True, timeout_ms=120_000):
        loop = QEventLoop()
        signal.connect(lambda *a: condition(*a) and loop.quit())
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()

    def close_and_time(viewer, worker):
        start = time.perf_counter()
        viewer.close()
        idle = QThreadPool.globalInstance().waitForDone(60_000)
        seconds = time.perf_counter() - start
        return f"quit asked {worker.abort_requested}, idle {idle} in {seconds:.2f} s"

    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (192, 192, 3), dtype=np.uint8)
    viewer = napari.Viewer(show=True)
    if os.environ["RUN"] == "fast":  # a whole stack runs as 25 batches of 16 planes
        viewer.add_image(rng.integers(0, 255, (400, 64, 64), dtype=np.uint8), name="photo")
        _, widget = viewer.window.add_plugin_dock_widget("napari-nst", "Style Transfer")
        widget.content.value = viewer.layers["photo"]
        widget.method.value, widget.stack.value = "fast", "all"
        widget.checkpoint.value = os.environ["MODEL"]
        widget.run.clicked.emit()
        wait(widget.session.worker.yielded, lambda step: step.iteration >= 1)
        print("fast:", close_and_time(viewer, widget.session.worker), flush=True)
        raise SystemExit(0)
    viewer.add_image(big[:64, :64], name="painting")
    viewer.add_image(np.stack([big[:96, :96], big[96:192, 96:192]]), name="photos")
    _, trainer = viewer.window.add_plugin_dock_widget("napari-nst", "Train Fast Style")
    trainer.style.value = viewer.layers["painting"]
    trainer.images.value = viewer.layers["photos"]
    trainer.output.value = os.environ["OUTPUT"]
    trainer.steps.value, trainer.image_size.value, trainer.batch_size.value = 100_000, 32, 1
    trainer.vgg.value, trainer.device.value = "random", "cpu"
    trainer.run.clicked.emit()
    wait(trainer._worker.yielded, lambda step: step.iteration >= 2)
    print("training:", close_and_time(viewer, trainer._worker), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (xvfb-run)")
def test_plugin_runs_and_napari_closes_mid_run_in_a_fresh_gui_process(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TORCH_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", SCRIPT],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "first run: done 3" in done.stdout
    assert "closed mid-run; pool idle: True" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (xvfb-run)")
def test_closing_napari_stops_fast_and_training_runs(tmp_path):
    import torch

    from tests.test_fast import transformer_state

    torch.save(transformer_state(), tmp_path / "model.pth")
    env = {
        **os.environ, "CUDA_VISIBLE_DEVICES": "", "TORCH_HOME": str(tmp_path),
        "MODEL": str(tmp_path / "model.pth"), "OUTPUT": str(tmp_path / "trained.pth"),
    }  # fmt: skip
    for run in ("fast", "training"):  # one viewer per process, as users have it
        done = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", CLOSE_MID_RUN],
            capture_output=True, text=True, timeout=300, env=env | {"RUN": run}, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{run}: quit asked True, idle True" in done.stdout, done.stdout
        print(done.stdout.strip().splitlines()[-1])
