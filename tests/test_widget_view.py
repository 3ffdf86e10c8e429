"""The widget's views of a run: the live loss curve, compare, linked results, blend."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY
from tests.conftest import WAIT_MS


def _grid(viewer):
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    return (grid.enabled, tuple(grid.shape), grid.stride)


def _add_result(viewer, name: str, value: int):
    data = np.full((48, 64, 3), value, dtype=np.uint8)
    return viewer.add_image(data, name=name, metadata={RECORD_KEY: {"status": "done"}})


@pytest.fixture
def two_results(widget):
    viewer = widget._viewer
    viewer.add_image(np.zeros((8, 8)), name="notes")  # neither input nor result
    return _add_result(viewer, "run 1", 80), _add_result(viewer, "run 2", 160)


def test_compare_shows_inputs_and_results_in_a_grid_and_restores_the_view(widget, two_results):
    viewer = widget._viewer
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    grid.shape, grid.stride = (2, 3), 2
    viewer.layers["painting"].visible = False
    viewer.layers["run 1"].visible = False
    before_grid = _grid(viewer)
    before_visible = {layer.name: layer.visible for layer in viewer.layers}
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.zoom = 3.0

    widget.compare.clicked.emit()
    assert widget.compare.value and _grid(viewer)[0]
    shown = {layer.name for layer in viewer.layers if layer.visible}
    assert shown == {"photo", "painting", "run 1", "run 2"}
    assert grid.actual_shape(viewer.layers) == (1, 4)
    positions = [grid.position(viewer.layers.index(name), viewer.layers) for name in shown]
    assert len(set(positions)) == 4  # one cell each

    widget.compare.clicked.emit()
    assert not widget.compare.value
    assert _grid(viewer) == before_grid == (False, (2, 3), 2)
    assert {layer.name: layer.visible for layer in viewer.layers} == before_visible
    assert camera.zoom == pytest.approx(3.0)

    widget.compare.value = True  # setting the toggle from code works the same way
    assert _grid(viewer)[0]
    widget.compare.value = False
    assert _grid(viewer) == before_grid


def test_compare_leaves_a_grid_the_user_had_on(widget, two_results):
    viewer = widget._viewer
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    grid.enabled, grid.shape = True, (3, 1)
    widget.compare.native.click()
    assert grid.shape == (1, 4) and grid.stride == -1
    widget.compare.native.click()
    assert _grid(viewer) == (True, (3, 1), 1)


def test_results_are_linked_while_comparing_and_only_then(widget, two_results):
    first, second = two_results
    widget.compare.clicked.emit()
    first.opacity = 0.4
    assert second.opacity == pytest.approx(0.4)
    second.contrast_limits = (10, 200)
    assert tuple(first.contrast_limits) == (10, 200)

    widget.link_results.value = False  # unticking unlinks at once
    first.opacity = 0.9
    assert second.opacity == pytest.approx(0.4)
    widget.link_results.value = True
    first.opacity = 0.7
    assert second.opacity == pytest.approx(0.7)

    widget.compare.clicked.emit()
    first.opacity = 0.2
    assert second.opacity == pytest.approx(0.7)  # back to independent layers


def test_a_result_made_while_comparing_joins_the_grid_and_the_links(widget, two_results):
    first, _ = two_results
    widget.compare.clicked.emit()
    third = _add_result(widget._viewer, "run 3", 240)
    first.opacity = 0.5
    assert third.visible and third.opacity == pytest.approx(0.5)
    widget.compare.clicked.emit()
    first.opacity = 1.0
    assert third.opacity == pytest.approx(0.5)


def test_leaving_compare_keeps_the_users_own_links(widget, two_results):
    from napari.experimental import link_layers

    first, second = two_results
    link_layers([first, second], ["opacity"])
    widget.compare.clicked.emit()
    widget.compare.clicked.emit()
    first.opacity = 0.3
    assert second.opacity == pytest.approx(0.3)


def test_blend_fades_the_latest_result_over_its_content_and_restores_it(widget, two_results):
    viewer = widget._viewer
    _, latest = two_results
    photo = viewer.layers["photo"]
    photo.visible = False
    latest.blending = "opaque"
    widget.compare.clicked.emit()

    widget.fade.value = 0.3
    assert not widget.compare.value and not _grid(viewer)[0]  # one picture, not a grid
    assert latest.opacity == pytest.approx(0.3) and latest.blending == "translucent"
    assert photo.visible and latest.visible
    widget.fade.value = 0.6
    assert latest.opacity == pytest.approx(0.6)

    widget.fade.value = 1.0
    assert latest.opacity == 1.0 and latest.blending == "opaque" and not photo.visible


def test_the_loss_curve_follows_the_run_and_its_continuation_and_clears_on_the_next(widget, qtbot):
    widget.iterations.value = 6
    seen: list[bool] = []
    take_step = widget.session._take_step

    def counting(step, record):
        seen.append(bool(step.losses))
        take_step(step, record)

    widget.session._take_step = counting
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)

    plot = widget.loss_plot
    assert sum(seen) == 6 and plot.count() == 6
    assert set(plot.terms) == {"content", "style", "tv", "total"}
    iterations, total = plot.series("total")
    np.testing.assert_array_equal(iterations, np.arange(1, 7))
    (output,) = [layer for layer in widget._viewer.layers if RECORD_KEY in layer.metadata]
    record = output.metadata[RECORD_KEY]
    np.testing.assert_allclose(total, [entry["losses"]["total"] for entry in record["history"]])
    plot.grab()  # paints without error, decimation included

    widget.iterations.value = 2
    widget.continue_run.clicked.emit()  # the same run goes on: so does its curve
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    np.testing.assert_array_equal(plot.series("total")[0], np.arange(1, 9))

    widget.run.clicked.emit()
    assert plot.count() == 0 and plot.terms == ()  # steps arrive through the event loop
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert plot.count() == 2 == len(plot.series("total")[0])


def test_the_loss_curve_skips_a_cancelled_repeat_and_steps_without_losses(widget):
    from napari_nst.core import Step

    plot = widget.loss_plot
    plot.add(Step(iteration=0, total=5, losses={}, elapsed=0.0))
    for iteration in (1, 2, 3):
        plot.add(Step(iteration, 5, {"total": 10.0 / iteration, "tv": 0.0}, 0.0))
    plot.add(Step(3, 5, {"total": 3.0}, 0.0, done=True, cancelled=True))
    assert plot.count() == 3
    np.testing.assert_allclose(plot.series("total")[1], [10.0, 5.0, 10 / 3])


def test_the_loss_curve_draws_at_most_two_points_per_pixel_column():
    from napari_nst._widget.loss_plot import _decimate, _polygon

    px = np.linspace(0, 199.9, 10_000)  # 10,000 iterations across 200 px
    values = np.sin(px) + (px == px[5000]) * 5  # one spike
    columns, kept = _decimate(px, values)
    assert len(columns) == len(kept) == 400
    assert kept.max() == values.max() and kept.min() == pytest.approx(values.min(), abs=1e-3)
    sparse = np.arange(50) * 4.0  # fewer points than pixels: every point stays
    np.testing.assert_array_equal(_decimate(sparse, values[:50])[1], values[:50])
    polygon = _polygon(columns, kept)
    assert len(polygon) == 400 and polygon[7].x() == columns[7] and polygon[7].y() == kept[7]
