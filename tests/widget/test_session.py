"""A run's life in the dock (``_widget/session.py``): pause/resume, cancel, weights
changed mid-run, continue, Full size, results laid over the content, time left, errors
in the widget's terms."""

from __future__ import annotations

import numpy as np

from napari_nst import stylize
from napari_nst._layers import RECORD_KEY
from napari_nst.core import optim
from tests.helpers import (
    WAIT_MS,
    iteration,
    outputs,
    press_and_wait,
    reweighted,
    run_to_end,
    weight_changes,
)


def test_pause_holds_the_run_and_resume_continues_its_optimisation(widget, qtbot):
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    assert widget.pause.enabled and not widget.resume.enabled
    qtbot.waitUntil(lambda: iteration(widget) >= 4, timeout=WAIT_MS)
    widget.pause.clicked.emit()
    assert widget.status.value.startswith("pausing")
    qtbot.waitUntil(lambda: widget.resume.enabled, timeout=WAIT_MS)
    paused_at = iteration(widget)
    assert widget.status.value == f"paused at iteration {paused_at}"
    assert "(paused)" in widget.session.progress.desc
    qtbot.wait(2000)  # the measured interval: nothing may happen in it
    assert iteration(widget) == paused_at and len(widget.session.record.history) == paused_at
    assert widget.running and not widget.pause.enabled

    widget.resume.clicked.emit()
    qtbot.waitUntil(lambda: iteration(widget) >= paused_at + 3, timeout=WAIT_MS)
    assert widget.pause.enabled and not widget.resume.enabled
    press_and_wait(widget, qtbot, widget.cancel)

    history = widget.session.record.history
    iterations = [entry["iteration"] for entry in history]
    assert iterations[: paused_at + 3] == list(range(1, paused_at + 4))  # no restart, no gap
    total = [entry["losses"]["total"] for entry in history]
    # The same optimisation goes on: the loss after the pause is where it was, far
    # below the first iterations' (a fresh optimiser would start at the top again).
    assert total[paused_at] <= 1.05 * total[paused_at - 1]
    assert total[paused_at] < 0.8 * total[0]


def test_cancel_while_paused_ends_the_run(widget, viewer, qtbot):
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: iteration(widget) >= 2, timeout=WAIT_MS)
    widget.pause.clicked.emit()
    qtbot.waitUntil(lambda: widget.resume.enabled, timeout=WAIT_MS)
    paused_at = iteration(widget)
    press_and_wait(widget, qtbot, widget.cancel)
    (output,) = outputs(viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "cancelled" and record["iteration"] <= paused_at + 1
    assert not widget.pause.enabled and not widget.resume.enabled


def test_a_weight_changed_mid_run_applies_from_the_next_iteration(widget, viewer, qtbot):
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: iteration(widget) >= 3, timeout=WAIT_MS)
    asked_at = iteration(widget)
    widget.style_weight.value = 0.0
    qtbot.waitUntil(lambda: reweighted(widget), timeout=WAIT_MS)
    changed = lambda: iteration(widget) >= weight_changes(widget)[0]["iteration"] + 2  # noqa: E731
    qtbot.waitUntil(changed, timeout=WAIT_MS)
    press_and_wait(widget, qtbot, widget.cancel)

    (output,) = outputs(viewer)
    record = output.metadata[RECORD_KEY]
    (change,) = record["weight_changes"]
    changed_at = change.pop("iteration")
    assert change == {"content_weight": 1.0, "style_weight": 0.0, "tv_weight": 10.0}
    assert changed_at > asked_at
    style = {entry["iteration"]: entry["losses"]["style"] for entry in record["history"]}
    assert all(style[n] > 0 for n in range(1, changed_at))
    assert all(style[n] == 0 for n in style if n >= changed_at)  # weighted by the new 0


def test_continue_adds_iterations_to_the_same_layer_and_record(widget, viewer, qtbot):
    widget.iterations.value = 4
    widget.run.clicked.emit()
    assert not widget.continue_run.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = outputs(viewer)
    first = np.array(output.data, copy=True)
    assert widget.continue_run.enabled

    widget.iterations.value = 3
    widget.continue_run.clicked.emit()
    assert widget.running and widget.session.record.status == "running"
    assert not widget.continue_run.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    assert outputs(viewer) == [output]  # the same layer
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["iteration"] == 7
    assert [entry["iteration"] for entry in record["history"]] == list(range(1, 8))
    total = [entry["losses"]["total"] for entry in record["history"]]
    assert total[4] < 0.8 * total[0]  # from where it stopped, not from the content again
    assert not np.array_equal(output.data, first)
    # The record says where it was continued, so its recipe makes the same image.
    assert record["continued"] == [{"after": 4, "iterations": 3}]
    from napari_nst.core import stylize

    layers = viewer.layers
    replay = stylize(layers["photo"].data, layers["painting"].data, recipe=record)
    assert np.array_equal(replay, output.data)

    assert widget.continue_run.enabled
    viewer.layers.remove(output)  # the finished run is let go with its layer
    assert not widget.continue_run.enabled and widget.session._finished is None


def _edges(layer) -> np.ndarray:
    """World coordinates of the outer pixel edges (napari's extent spans pixel centres)."""
    return layer.extent.world + np.array([-0.5, 0.5])[:, None] * np.asarray(layer.scale)


def test_a_result_computed_smaller_is_shown_as_computed_over_the_content(widget, viewer, qtbot):
    photo = viewer.layers["photo"]  # 48×64 px, scale 0.5, translate (10, -3)
    widget.iterations.value = 2
    widget.size.value = 48
    assert widget.output_size.value == "working"
    output = run_to_end(widget, qtbot, viewer)
    assert output.data.shape == (36, 48, 3)  # not resampled
    np.testing.assert_allclose(output.scale, (0.5 * 48 / 36, 0.5 * 64 / 48))
    # The same pixel edges in the world: it lies exactly over the content.
    np.testing.assert_allclose(_edges(output), _edges(photo), atol=1e-9)
    assert "upsampled" not in output.metadata[RECORD_KEY]


def test_full_size_goes_on_at_the_contents_resolution_into_a_new_layer(
    widget, viewer, qtbot, content_rgb, style_rgb
):
    widget.iterations.value = 2
    widget.size.value = 48
    small = run_to_end(widget, qtbot, viewer)
    assert widget.full_size.enabled and widget.continue_run.enabled
    full = run_to_end(widget, qtbot, viewer, widget.full_size)
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
    press_and_wait(widget, qtbot, widget.cancel)
    notes = [text for text in shown if "will take about" in text]
    assert len(notes) == 1 and "(64 px on cpu)" in notes[0]
    assert "size='" not in notes[0]  # in the widget's terms


def test_an_offline_download_error_speaks_of_the_widgets_controls(
    widget, qtbot, monkeypatch, torch_home
):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    widget.vgg.value = "torchvision"
    press_and_wait(widget, qtbot)
    (message,) = shown
    assert "could not download the VGG19" in message
    assert "vgg: bundled" in message and "vgg='" not in message
