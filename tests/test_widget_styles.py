"""The widget's several-styles and styles-per-region controls, driven by name."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY
from tests.conftest import WAIT_MS

CONTROLS = ("styles", "style_blend_weights", "labels", "label_styles")


def _sunset() -> np.ndarray:
    """A second style unlike the striped painting: smooth, reddish, no stripes."""
    y, x = np.mgrid[0:40, 0:56] / 56.0
    image = np.stack([0.6 + 0.4 * np.sin(3 * x), 0.3 + 0.2 * y, 0.1 + 0.1 * x * y], axis=-1)
    return np.rint(image * 255).astype(np.uint8)


def _halves() -> np.ndarray:
    """Labels for the 48×64 photo: 1 on the left half, 2 on the right."""
    labels = np.ones((48, 64), dtype=np.int32)
    labels[:, 32:] = 2
    return labels


def _run(widget, qtbot):
    """Run to the end; the newest output layer."""
    before = set(map(id, widget._viewer.layers))
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    (output,) = [layer for layer in widget._viewer.layers if id(layer) not in before]
    assert output.metadata[RECORD_KEY]["status"] == "done"
    return output


def _change(output, photo: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute change from the content, in the content's units."""
    return np.abs(output.data.astype(np.float64) - photo).mean(axis=-1)


def test_the_style_lists_follow_the_viewers_layers(widget):
    viewer = widget._viewer
    assert [layer.name for layer in widget.styles.choices] == ["photo", "painting"]
    assert widget["labels"].value is None and widget["labels"].choices == (None,)
    sunset = viewer.add_image(_sunset(), name="sunset")
    regions = viewer.add_labels(_halves(), name="regions")
    assert sunset in widget.styles.choices and regions in widget["labels"].choices
    assert widget["labels"].value is None  # a new Labels layer does not switch regions on
    widget.styles.value = [sunset]
    sunset.name = "dusk"
    assert widget.styles.value == [sunset] and "dusk" in widget.styles.current_choice
    viewer.layers.remove(sunset)
    assert widget.styles.value == [] and sunset not in widget.styles.choices


def test_blend_weights_mix_the_styles_and_reach_the_record(widget, qtbot):
    viewer = widget._viewer
    sunset = viewer.add_image(_sunset(), name="sunset")
    inputs = {layer.name: np.array(layer.data, copy=True) for layer in viewer.layers}
    widget.iterations.value = 3
    alone = _run(widget, qtbot)
    widget.styles.value = [sunset]
    widget.style_blend_weights.value = "1,0"
    first_only = _run(widget, qtbot)
    widget.style_blend_weights.value = "0.5, 0.5"
    half = _run(widget, qtbot)

    np.testing.assert_array_equal(first_only.data, alone.data)
    assert np.abs(half.data.astype(np.int64) - alone.data).mean() > 5.0
    record = alone.metadata[RECORD_KEY]
    assert record["params"]["style_blend_weights"] is None
    assert record["sources"] == {"content": "photo", "style": "painting"}
    record = first_only.metadata[RECORD_KEY]
    assert record["params"]["style_blend_weights"] == [1.0, 0.0]
    assert record["sources"]["style"] == ["painting", "sunset"]
    assert half.metadata[RECORD_KEY]["params"]["style_blend_weights"] == [0.5, 0.5]
    for name, data in inputs.items():
        np.testing.assert_array_equal(viewer.layers[name].data, data)


def test_a_content_region_keeps_the_content(widget, qtbot, content_rgb):
    viewer = widget._viewer
    regions = viewer.add_labels(_halves(), name="regions")
    widget.iterations.value = 6
    # 256 px, compared at that size with the content the optimisation starts from: the
    # content term weighs as much as the style (normalised losses), and at 64 px one
    # relu4_2 cell sees most of the photo, so it pulls the kept half along with the other.
    widget.size.value = 256
    start = _working_content(content_rgb, 256)
    everywhere = _run(widget, qtbot)
    widget["labels"].value = regions
    widget.label_styles.value = "1:0,2:content"
    by_region = _run(widget, qtbot)

    record = by_region.metadata[RECORD_KEY]
    assert record["params"]["label_styles"] == "1:0,2:content"
    assert record["sources"] == {"content": "photo", "style": "painting", "labels": "regions"}
    styled, kept = _change(by_region, start), _change(everywhere, start)
    half = start.shape[1] // 2
    # Without labels both halves move alike; with them the content half barely moves
    # (only through receptive fields across the border) while the other is stylised.
    assert kept[:, half:].mean() > 10 and kept[:, :half].mean() > 10
    assert styled[:, half:].mean() < 0.2 * kept[:, half:].mean()
    assert styled[:, :half].mean() > 0.5 * kept[:, :half].mean()
    np.testing.assert_array_equal(regions.data, _halves())


def _working_content(photo: np.ndarray, size: int) -> np.ndarray:
    """The photo as the engine starts from it at working size ``size``, in 0–255."""
    import torch

    from napari_nst.core import images

    shape = images.working_shape(photo.shape[:2], size)
    tensor = images.to_tensor(photo.astype(np.float32) / 255, shape, torch.device("cpu"))
    return tensor[0].permute(1, 2, 0).numpy() * 255


def _second_style(widget, weights: str = "") -> None:
    widget.styles.value = [widget._viewer.add_image(_sunset(), name="sunset")]
    widget.style_blend_weights.value = weights


def _regions(widget, label_styles: str, labels: np.ndarray | None = None) -> None:
    layer = widget._viewer.add_labels(_halves() if labels is None else labels, name="regions")
    widget["labels"].value = layer
    widget.label_styles.value = label_styles


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda w: _second_style(w, "1,1,1"), "has 3 value(s) for 2 style image(s)"),
        (lambda w: _second_style(w, "1,x"), "style_blend_weights must be a list of numbers"),
        (lambda w: _regions(w, "1:5"), "maps to style 5, but there are 1 style image(s)"),
        (lambda w: _regions(w, "1:0", np.ones((40, 56), np.int32)), "must be the same size"),
        (lambda w: setattr(w.label_styles, "value", "1:0"), "label_styles needs labels"),
        (lambda w: setattr(w.styles, "value", [w.content.value]), "is the content"),
        (lambda w: setattr(w.styles, "value", [w.style.value]), "is the style already"),
    ],
    ids=["weights-count", "weights-text", "style-index", "labels-shape", "no-labels",
         "content-as-style", "style-twice"],
)  # fmt: skip
def test_bad_style_choices_are_one_error_and_no_run(widget, monkeypatch, setup, message):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    setup(widget)
    layers = list(widget._viewer.layers)
    widget.run.clicked.emit()
    assert not widget.running and widget.session.record is None
    assert list(widget._viewer.layers) == layers
    assert len(shown) == 1 and message in shown[0], shown


def test_a_labels_stack_gives_the_plane_on_screen(widget):
    viewer = widget._viewer
    volume = viewer.add_image(np.random.default_rng(0).random((3, 40, 40)), name="volume")
    planes = np.arange(3, dtype=np.int32)[:, None, None] + np.zeros((3, 40, 40), np.int32)
    viewer.add_labels(planes, name="stack labels")
    widget.content.value = volume
    widget["labels"].value = viewer.layers["stack labels"]
    viewer.dims.set_current_step(0, 2)
    request = widget.prepare()  # validated, not started
    assert np.unique(request.run._regions.labels).tolist() == [2]
    assert request.sources["labels"] == "stack labels" and request.sources["plane"] == [2]
    assert not widget.running


@pytest.mark.parametrize(
    ("labels_shape", "scheduler", "message"),
    [((3, 40, 40), "", "use a 2-D Labels layer"), ((40, 40), "local", "clear the Dask scheduler")],
)
def test_whole_stack_runs_refuse_labels_they_cannot_use(
    widget, monkeypatch, labels_shape, scheduler, message
):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.session.show_error", shown.append)
    viewer = widget._viewer
    volume = viewer.add_image(np.random.default_rng(0).random((3, 40, 40)), name="volume")
    widget.content.value = volume
    widget["labels"].value = viewer.add_labels(np.ones(labels_shape, np.int32), name="labels")
    widget.stack.value = "all"
    widget.dask_scheduler.value = scheduler
    widget.run.clicked.emit()
    assert not widget.running and widget.session.record is None
    assert len(shown) == 1 and message in shown[0], shown


def test_the_style_controls_are_for_the_optimisation_only(widget):
    def visible() -> list[bool]:
        return [widget[name].native.isVisibleTo(widget.native) for name in CONTROLS]

    assert all(visible())
    widget.method.value = "fast"
    assert not any(visible())
    assert "style_blend_weights" not in widget.options()
    widget.method.value = "gatys"
    assert all(visible())
