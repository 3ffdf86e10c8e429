"""The dock runs on a napari-nst server as it runs here: the same image, previews and
progress, Pause holding the job on the server, Cancel cancelling it there."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY
from tests.helpers import WAIT_MS, ServerProcess, http_json, iteration, run_to_end

pytestmark = pytest.mark.slow  # a server in a real subprocess


def test_the_dock_runs_on_a_server_with_pause_and_cancel(widget, viewer, qtbot, tmp_path):
    widget.iterations.value = 4
    here = run_to_end(widget, qtbot, viewer, done=True)
    threads = here.metadata[RECORD_KEY]["threads"]  # the same threads: the same sums
    server = ServerProcess(tmp_path / "data", "--threads", str(threads))
    try:
        widget.server.value = server.url
        there = run_to_end(widget, qtbot, viewer, done=True)
        np.testing.assert_array_equal(there.data, here.data)  # one engine, fp32 both
        assert there.data.dtype == here.data.dtype
        record = there.metadata[RECORD_KEY]
        assert record["server"] == server.url and len(record["history"]) >= 1
        (job,) = http_json(f"{server.url}/jobs")["jobs"]
        assert job["status"] == "done" and job["iteration"] == 4

        widget.iterations.value = 300
        widget.run.clicked.emit()
        qtbot.waitUntil(lambda: iteration(widget) >= 1, timeout=WAIT_MS)
        widget.pause.clicked.emit()
        qtbot.waitUntil(lambda: widget.resume.enabled, timeout=WAIT_MS)
        running = http_json(f"{server.url}/jobs")["jobs"][-1]
        assert running["status"] == "running" and running["paused"] is True
        widget.resume.clicked.emit()
        qtbot.waitUntil(lambda: widget.pause.enabled, timeout=WAIT_MS)
        assert "paused" not in http_json(f"{server.url}/jobs/{running['id']}")
        widget.cancel.clicked.emit()
        qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
        ended = http_json(f"{server.url}/jobs/{running['id']}")
        assert ended["status"] == "cancelled" and ended["iteration"] < 300
    finally:
        server.kill()


def test_a_server_that_is_not_there_is_one_line_in_the_status(widget, viewer, qtbot):
    widget.server.value = "http://127.0.0.1:9"  # discard port: nothing listens
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    status = str(widget.status.value)
    assert "cannot reach a napari-nst server at http://127.0.0.1:9" in status
    assert "\n" not in status
    assert len(viewer.layers) == 2  # the photo and the painting: no output layer


def test_a_stack_comes_back_whole_in_the_files_dtype(tmp_path):
    """A uint16 stack run on a server: every plane comes back (a multi-page TIFF), equal to
    the run here rounded to the content's dtype, as the server writes result files."""
    from napari_nst.core import stylize
    from napari_nst.core.devices import torch_threads
    from napari_nst.server.client import RemoteRun

    rng = np.random.default_rng(0)
    stack = (rng.random((3, 40, 48)) * 4000).astype(np.uint16)
    style = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    options = dict(stack="all", vgg="random", device="cpu", iterations=3, size=48,
                   contrast_limits=(0, 4000))  # fmt: skip
    server = ServerProcess(tmp_path / "data", "--threads", "1")
    try:
        run = RemoteRun(server.url, stack, style, **options)
        image = np.zeros(run.rendering.shape, run.rendering.dtype)
        planes = []
        for step in run.steps():
            if step.image is not None and step.plane_done:
                image[step.index] = step.image
                planes.append(step.plane)
    finally:
        server.kill()
    with torch_threads(1):
        here = stylize(stack, style, **options)
    assert planes == [0, 1, 2] and image.shape == here.shape == (3, 40, 48)
    np.testing.assert_array_equal(image, np.rint(here))
    assert run.info()["precision"] == "fp32" and run.info()["server"] == server.url
