"""Compare (``_widget/compare.py``): inputs and results in a grid, linked results, and
the latest result faded over its content."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY


def _grid(viewer):
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    return (grid.enabled, tuple(grid.shape), grid.stride)


def _add_result(viewer, name: str, value: int):
    data = np.full((48, 64, 3), value, dtype=np.uint8)
    return viewer.add_image(data, name=name, metadata={RECORD_KEY: {"status": "done"}})


@pytest.fixture
def two_results(widget, viewer):
    viewer.add_image(np.zeros((8, 8)), name="notes")  # neither input nor result
    return _add_result(viewer, "run 1", 80), _add_result(viewer, "run 2", 160)


def test_compare_shows_inputs_and_results_in_a_grid_and_restores_the_view(
    widget, viewer, two_results
):
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


def test_compare_leaves_a_grid_the_user_had_on(widget, viewer, two_results):
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


def test_a_result_made_while_comparing_joins_the_grid_and_the_links(widget, viewer, two_results):
    first, _ = two_results
    widget.compare.clicked.emit()
    third = _add_result(viewer, "run 3", 240)
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


def test_blend_fades_the_latest_result_over_its_content_and_restores_it(
    widget, viewer, two_results
):
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
