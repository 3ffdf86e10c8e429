"""Live control of the widget's runs: pause/resume, the job queue, parameter sweeps."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY
from napari_nst._widget.sweep import sweep_values, text_overlay
from tests.conftest import WAIT_MS


@pytest.fixture
def widget(widget):
    """The conftest widget; a failed test leaves no queued run to start at teardown."""
    yield widget
    widget.queue.drop_all()


def _outputs(viewer) -> list:
    return [layer for layer in viewer.layers if RECORD_KEY in layer.metadata]


def _shown(widget, name: str) -> bool:
    return getattr(widget, name).native.isVisibleTo(widget.native)


def _iteration(widget) -> int:
    return widget.session.record.iteration if widget.session.record is not None else 0


def test_pause_holds_the_run_and_resume_continues_its_optimisation(widget, qtbot):
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    assert widget.pause.enabled and not widget.resume.enabled
    qtbot.waitUntil(lambda: _iteration(widget) >= 4, timeout=WAIT_MS)
    widget.pause.clicked.emit()
    assert widget.status.value.startswith("pausing")
    qtbot.waitUntil(lambda: widget.resume.enabled, timeout=WAIT_MS)
    paused_at = _iteration(widget)
    assert widget.status.value == f"paused at iteration {paused_at}"
    assert "(paused)" in widget.session.progress.desc
    qtbot.wait(2000)  # the measured interval: nothing may happen in it
    assert _iteration(widget) == paused_at and len(widget.session.record.history) == paused_at
    assert widget.running and not widget.pause.enabled

    widget.resume.clicked.emit()
    qtbot.waitUntil(lambda: _iteration(widget) >= paused_at + 3, timeout=WAIT_MS)
    assert widget.pause.enabled and not widget.resume.enabled
    widget.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    history = widget.session.record.history
    iterations = [entry["iteration"] for entry in history]
    assert iterations[: paused_at + 3] == list(range(1, paused_at + 4))  # no restart, no gap
    total = [entry["losses"]["total"] for entry in history]
    # The same optimisation goes on: the loss after the pause is where it was, far
    # below the first iterations' (a fresh optimiser would start at the top again).
    assert total[paused_at] <= 1.05 * total[paused_at - 1]
    assert total[paused_at] < 0.8 * total[0]


def test_cancel_while_paused_ends_the_run(widget, qtbot):
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: _iteration(widget) >= 2, timeout=WAIT_MS)
    widget.pause.clicked.emit()
    qtbot.waitUntil(lambda: widget.resume.enabled, timeout=WAIT_MS)
    paused_at = _iteration(widget)
    widget.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = _outputs(widget._viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "cancelled" and record["iteration"] <= paused_at + 1
    assert not widget.pause.enabled and not widget.resume.enabled


def test_run_while_running_queues_the_job_and_one_network_serves_the_queue(
    widget, qtbot, monkeypatch
):
    from napari_nst.core import vgg

    draws: list[int] = []
    original = vgg.random_convs
    monkeypatch.setattr(vgg, "random_convs", lambda seed: draws.append(seed) or original(seed))
    vgg._shared_random_convs.cache_clear()

    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: _iteration(widget) >= 2, timeout=WAIT_MS)
    assert widget.run.enabled and widget.run.text == "Add to queue"
    widget.iterations.value = 3
    widget.run.clicked.emit()
    widget.iterations.value = 5
    widget.run.clicked.emit()
    assert [request.run.options.iterations for request in widget.queue.jobs] == [3, 5]
    assert _shown(widget, "queue") and len(widget.queue) == 2
    assert "(5 it.)" in widget.queue[1].job.value

    widget.queue[1].cancel.clicked.emit()  # per-job cancel
    assert [request.run.options.iterations for request in widget.queue.jobs] == [3]
    widget.cancel.clicked.emit()  # ends the first run; the queued one starts
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    assert not widget.queue.jobs and not _shown(widget, "queue") and widget.run.text == "Run"
    records = [layer.metadata[RECORD_KEY] for layer in _outputs(widget._viewer)]
    assert [(r["status"], r["params"]["iterations"]) for r in records] == [
        ("cancelled", 2000),
        ("done", 3),
    ]
    assert records[1]["iteration"] == 3 and len(records[1]["history"]) == 3
    assert draws == [0]  # the weights were made once for both runs


def test_a_queued_job_is_validated_when_run_is_pressed(widget, qtbot, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    widget.size.value = 32  # too small: refused now, not when its turn comes
    widget.run.clicked.emit()
    assert len(shown) == 1 and "at least 32 px" in shown[0]
    assert not widget.queue.jobs


def test_sweep_fills_one_stack_layer_along_a_labelled_axis(widget, qtbot, monkeypatch):
    from napari_nst.core import losses

    monkeypatch.setattr(losses, "_CACHE", OrderedDict())
    builds = losses.style_target_builds()
    viewer = widget._viewer
    widget.iterations.value = 3
    widget.sweep_parameter.value = "style_weight"
    widget.sweep_values.value = "0.1, 1, 10"  # normalised units: little style to a lot
    widget.sweep.clicked.emit()
    assert len(widget.queue.jobs) == 2  # the first runs, the others wait
    qtbot.waitUntil(lambda: not widget.running, timeout=3 * WAIT_MS)

    (output,) = _outputs(viewer)
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


def _weight_changes(widget) -> list:
    return widget.session.record.weight_changes if widget.session.record is not None else []


def _reweighted(widget) -> bool:
    return bool(_weight_changes(widget))


def test_a_weight_changed_mid_run_applies_from_the_next_iteration(widget, qtbot):
    widget.iterations.value = 2000
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: _iteration(widget) >= 3, timeout=WAIT_MS)
    asked_at = _iteration(widget)
    widget.style_weight.value = 0.0
    qtbot.waitUntil(lambda: _reweighted(widget), timeout=WAIT_MS)
    changed = lambda: _iteration(widget) >= _weight_changes(widget)[0]["iteration"] + 2  # noqa: E731
    qtbot.waitUntil(changed, timeout=WAIT_MS)
    widget.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    (output,) = _outputs(widget._viewer)
    record = output.metadata[RECORD_KEY]
    (change,) = record["weight_changes"]
    changed_at = change.pop("iteration")
    assert change == {"content_weight": 1.0, "style_weight": 0.0, "tv_weight": 10.0}
    assert changed_at > asked_at
    style = {entry["iteration"]: entry["losses"]["style"] for entry in record["history"]}
    assert all(style[n] > 0 for n in range(1, changed_at))
    assert all(style[n] == 0 for n in style if n >= changed_at)  # weighted by the new 0


def test_weights_changed_during_a_sweep_keep_the_swept_value(widget, qtbot):
    widget.iterations.value = 2000
    widget.sweep_values.value = "1e4, 1e5"
    widget.sweep.clicked.emit()
    qtbot.waitUntil(lambda: _iteration(widget) >= 2, timeout=WAIT_MS)
    widget.tv_weight.value = 5.0
    qtbot.waitUntil(lambda: _reweighted(widget), timeout=WAIT_MS)
    widget.queue[0].cancel.clicked.emit()
    widget.cancel.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = _outputs(widget._viewer)
    first, second = output.metadata[RECORD_KEY]["sweep"]["records"]
    assert second is None  # removed from the queue before it ran
    (change,) = first["weight_changes"]
    assert change["style_weight"] == 1e4 and change["tv_weight"] == 5.0


def test_continue_adds_iterations_to_the_same_layer_and_record(widget, qtbot):
    widget.iterations.value = 4
    widget.run.clicked.emit()
    assert not widget.continue_run.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = _outputs(widget._viewer)
    first = np.array(output.data, copy=True)
    assert widget.continue_run.enabled

    widget.iterations.value = 3
    widget.continue_run.clicked.emit()
    assert widget.running and widget.session.record.status == "running"
    assert not widget.continue_run.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    assert _outputs(widget._viewer) == [output]  # the same layer
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["iteration"] == 7
    assert [entry["iteration"] for entry in record["history"]] == list(range(1, 8))
    total = [entry["losses"]["total"] for entry in record["history"]]
    assert total[4] < 0.8 * total[0]  # from where it stopped, not from the content again
    assert not np.array_equal(output.data, first)
    # The record says where it was continued, so its recipe makes the same image.
    assert record["continued"] == [{"after": 4, "iterations": 3}]
    from napari_nst.core import stylize

    layers = widget._viewer.layers
    replay = stylize(layers["photo"].data, layers["painting"].data, recipe=record)
    assert np.array_equal(replay, output.data)

    assert widget.continue_run.enabled
    widget._viewer.layers.remove(output)  # the finished run is let go with its layer
    assert not widget.continue_run.enabled and widget.session._finished is None
