"""Hours in one viewer: memory trouble is handled in the widget, and nothing piles up."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import torch
from qtpy.QtCore import QThreadPool

from napari_nst._layers import RECORD_KEY
from napari_nst.core import devices
from napari_nst.core.vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, VGGFeatures
from tests.helpers import WAIT_MS, outputs, press_and_wait, transformer_state

LAYERS = DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS


def _run_and_record(widget, qtbot, viewer, button=None) -> dict:
    """Press Run (or ``button``), wait until the run ends; the newest output's record."""
    press_and_wait(widget, qtbot, button)
    layers = outputs(viewer)
    return layers[-1].metadata[RECORD_KEY] if layers else {}


def test_a_run_too_big_is_refused_and_the_size_that_fits_is_offered(
    widget, viewer, qtbot, monkeypatch
):
    # The content is 48×64: at size 128 it works at 96×128 (the style, 40×56, at 91×128).
    available = devices.gatys_bytes((96, 128), (91, 128), 3, LAYERS) + 1
    monkeypatch.setattr(devices, "available_bytes", lambda device: available)
    errors: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", errors.append)
    widget.size.value = 4096
    widget.iterations.value = 2
    widget.run.clicked.emit()

    assert not widget.running and "size 128 px would fit" in errors[-1]
    assert widget.fit_size.native.isVisibleTo(widget.native)
    assert widget.fit_size.text == "Run at 128 px instead"
    record = _run_and_record(widget, qtbot, viewer, widget.fit_size)
    assert widget.size.value == 128 and record["status"] == "done"
    assert record["working_size"] == [96, 128]
    assert not widget.fit_size.native.isVisibleTo(widget.native)


def test_running_out_of_memory_fails_the_run_and_the_next_one_works(
    widget, viewer, qtbot, monkeypatch
):
    forward, calls = VGGFeatures.forward, [0]

    def flaky(self, rgb):
        calls[0] += 1
        if calls[0] > 12:  # a few iterations in, after the first preview
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return forward(self, rgb)

    monkeypatch.setattr(VGGFeatures, "forward", flaky)
    errors: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", errors.append)
    widget.iterations.value = 200
    record = _run_and_record(widget, qtbot, viewer)

    assert record["status"] == "failed" and widget.status.value == errors[-1]  # whole
    assert "ran out of memory on cpu" in record["message"] and "smaller size" in errors[-1]
    assert widget.run.enabled and not widget.cancel.enabled
    monkeypatch.setattr(VGGFeatures, "forward", forward)
    widget.iterations.value = 3
    assert _run_and_record(widget, qtbot, viewer)["status"] == "done"


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _usage() -> dict[str, int]:
    gc.collect()
    return {"objects": len(gc.get_objects()), "threads": threading.active_count(), "rss": _rss()}


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc")
def test_fifty_runs_mixing_methods_and_cancels_leave_nothing_behind(
    widget, viewer, qtbot, tmp_path, capsys
):
    checkpoint = tmp_path / "model.pth"
    torch.save(transformer_state(), checkpoint)
    widget.size.value = 48

    def one_run(number: int) -> str:
        kind = ("gatys", "fast", "cancel")[number % 3]
        widget.method.value = "fast" if kind == "fast" else "gatys"
        widget.checkpoint.value = checkpoint
        widget.size.value = 48
        widget.iterations.value = 1000 if kind == "cancel" else 1
        widget.run.clicked.emit()
        if kind == "cancel":
            started = lambda: widget.session.record and widget.session.record.iteration >= 1  # noqa: E731
            qtbot.waitUntil(started, timeout=WAIT_MS)
            widget.cancel.clicked.emit()
        qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
        (output,) = outputs(viewer)
        status = output.metadata[RECORD_KEY]["status"]
        viewer.layers.remove(output)  # a user keeps some results, not fifty
        return status

    statuses = [one_run(n) for n in range(10)]  # warm-up: caches, pools, first layers
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)
    before = _usage()
    statuses += [one_run(n) for n in range(10, 50)]
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)
    after = _usage()

    assert statuses.count("done") == 34 and statuses.count("cancelled") == 16
    growth = {key: after[key] / before[key] - 1 for key in before}
    with capsys.disabled():
        print(f"\n50 runs: after warm-up {before}, after 50 {after}, growth {growth}")
    assert after["threads"] <= before["threads"]
    assert growth["objects"] < 0.10 and growth["rss"] < 0.10
    content, style = viewer.layers["photo"], viewer.layers["painting"]
    assert content.data.dtype == np.uint8 and style.data.dtype == np.uint8
