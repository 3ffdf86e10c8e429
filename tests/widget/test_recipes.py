"""Recipes in the dock (``_widget/recipes.py``): an exported recipe makes the layer
again with the CLI; loading one restores every control and the layer pickers."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from napari_nst._layers import RECORD_KEY
from napari_nst.core import stylize
from napari_nst.core.options import Options
from napari_nst.core.provenance import RunRecord
from tests.helpers import outputs, run_to_end


def _run_and_select(widget, qtbot, viewer):
    """Run to the end; the output, selected (the layer Export recipe reads)."""
    output = run_to_end(widget, qtbot, viewer, done=True)
    assert outputs(viewer) == [output]
    viewer.layers.selection.active = output
    return output


@pytest.mark.slow
def test_an_exported_recipe_makes_the_layer_again_with_the_cli(widget, viewer, qtbot, files):
    """The acceptance round trip: widget run, Export recipe, `napari-nst stylize --recipe`."""
    content, style, tmp = files
    widget.content.value = viewer.add_image(iio.imread(content), name="content")
    widget.style.value = viewer.add_image(iio.imread(style), name="style")
    widget.iterations.value, widget.seed.value, widget.tv_weight.value = 3, 4, 0.5
    output = _run_and_select(widget, qtbot, viewer)

    widget.recipe_file.value = tmp / "r.json"
    widget.export_recipe.clicked.emit()
    recipe = json.loads((tmp / "r.json").read_text())
    assert recipe == json.loads(json.dumps(output.metadata[RECORD_KEY]))
    assert recipe["params"]["seed"] == 4 and recipe["params"]["vgg"] == "random"
    assert recipe["sources"] == {"content": "content", "style": "style"}
    # The widget's run leaves a core to napari; the recipe holds the count it used.
    from napari_nst._torch_in_gui import run_threads

    assert recipe["device"] == "cpu" and recipe["threads"] == run_threads()
    assert recipe["vgg"]["source"] == "random" and "torch" in recipe["versions"]

    done = subprocess.run(
        [sys.executable, "-m", "napari_nst.cli", "stylize", str(content), str(style),
         "--recipe", str(tmp / "r.json"), "-o", str(tmp / "out.png"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == ""
    assert np.array_equal(iio.imread(tmp / "out.png"), output.data)


def test_what_the_widget_takes_from_the_layer_is_in_the_recipe(widget, viewer, qtbot, style_rgb):
    """Gray content: its window and anisotropic pixels shape the result, and replay."""
    gray = np.random.default_rng(1).integers(0, 4000, (48, 48), dtype=np.uint16)
    layer = viewer.add_image(gray, name="scan", scale=(1.0, 1.5))
    layer.contrast_limits = (500, 3000)
    widget.content.value = layer
    widget.iterations.value = 3
    output = _run_and_select(widget, qtbot, viewer)
    record = output.metadata[RECORD_KEY]
    assert record["params"]["contrast_limits"] == [500, 3000]
    assert record["params"]["spacing"] == [1.0, 1.5] and record["working_size"] == [43, 64]
    assert np.array_equal(stylize(gray, style_rgb, recipe=record), output.data)


def test_load_recipe_fills_every_field_and_the_layer_pickers(
    widget, viewer, qtbot, monkeypatch, tmp_path
):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", shown.append)
    widget.preset.value = "bold"
    widget.iterations.value, widget.seed.value, widget.style_scale.value = 3, 7, 0.75
    widget.preserve_color.value, widget.output_range.value = "histogram", "unit"
    widget.early_stop_tol.value, widget.content_weight.value = 0.05, 2.5
    expected = widget.options()
    output = _run_and_select(widget, qtbot, viewer)

    widget.preset.value = "faithful"
    widget.iterations.value, widget.seed.value, widget.style_scale.value = 50, 0, 1.0
    widget.preserve_color.value, widget.output_range.value = "none", "original"
    widget.early_stop_tol.value, widget.vgg.value = 0.0, "torchvision"
    widget.content.value, widget.style.value = viewer.layers["painting"], output
    assert widget.options() != expected
    viewer.layers.selection.active = output
    widget.load_recipe.clicked.emit()
    assert widget.options() == expected
    assert widget.content.value is viewer.layers["photo"]
    assert widget.style.value is viewer.layers["painting"]
    assert shown == ["Settings of 'photo × painting' loaded"]
    # With no recipe file chosen, Export asks where (here: dismissed, then a path).
    asked: list[str] = []
    monkeypatch.setattr("napari_nst._widget.recipes._ask_path", lambda _, name: asked.append(name))
    widget.export_recipe.clicked.emit()
    chosen = tmp_path / "asked.json"
    monkeypatch.setattr("napari_nst._widget.recipes._ask_path", lambda *_: str(chosen))
    widget.export_recipe.clicked.emit()
    assert asked == ["photo × painting"] and widget.recipe_file.value == chosen
    assert json.loads(chosen.read_text())["params"] == output.metadata[RECORD_KEY]["params"]


def test_a_layer_without_a_record_is_refused_and_nothing_is_written(
    widget, viewer, tmp_path, monkeypatch
):
    shown: list[str] = []
    monkeypatch.setattr("napari_nst._widget.recipes.show_error", shown.append)
    viewer.layers.selection.active = viewer.layers["photo"]
    before = widget.options()
    widget.load_recipe.clicked.emit()
    widget.recipe_file.value = tmp_path / "r.json"
    widget.export_recipe.clicked.emit()
    assert shown == [
        "Load recipe: layer 'photo' has no run record; select an output layer of a style "
        "transfer run",
        "Export recipe: layer 'photo' has no run record; select an output layer of a style "
        "transfer run",
    ]
    assert widget.options() == before and not (tmp_path / "r.json").exists()


CHANGED = {
    "preset": "bold", "style_strength": 1.0, "size": 200, "iterations": 7,
    "style_scale": 0.75, "preserve_color": "histogram", "luminance_only": True,
    "output_range": "unit", "output_size": "content", "pyramid": "off",
    "early_stop_tol": 0.05, "content_weight": 2.5, "style_weight": 7.5, "tv_weight": 3.5,
    "style_blend_weights": "2,1", "label_styles": "1:0,2:content", "stack": "all",
    "slice_weight": 0.25, "device": "auto", "vgg": "torchvision", "seed": 3,
}  # fmt: skip
"""A value other than the widget's own for every control of a gatys run (set in this
order: the preset and the strength fill the weights, which then take their own values)."""


FAST_ONLY = {"method", "checkpoint"}
UNIVERSAL_ONLY = {"alpha", "levels", "decoders"}  # wct/adain: tests/widget/test_universal.py


def test_a_recipe_round_trip_restores_every_control(widget, viewer, monkeypatch):
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", lambda *_: None)
    # A new control needs a value here.
    assert set(CHANGED) | FAST_ONLY | UNIVERSAL_ONLY == set(widget.controlled())
    start = {name: getattr(widget, name).value for name in CHANGED}
    for name, value in CHANGED.items():
        assert start[name] != value, name
        getattr(widget, name).value = value
    assert {name: getattr(widget, name).value for name in CHANGED} == CHANGED
    changed = widget.options()
    record = RunRecord(Options.from_kwargs(changed).to_dict(), {"content": "photo"})
    output = viewer.add_image(widget.content.value.data, name="a result", rgb=True)
    output.metadata[RECORD_KEY] = record.to_dict()

    for name in reversed(CHANGED):  # back to the widget's own settings
        getattr(widget, name).value = start[name]
    assert widget.options() != changed
    viewer.layers.selection.active = output
    widget.load_recipe.clicked.emit()
    assert widget.options() == changed
    restored = {name: getattr(widget, name).value for name in CHANGED}
    assert restored == CHANGED | {"style_strength": restored["style_strength"]}
    assert abs(restored["style_strength"] - 1.75) < 1e-3  # 2·log10(7.5): the weight wins


def test_a_fast_recipe_restores_the_method_and_its_model(widget, viewer, monkeypatch, tmp_path):
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", lambda *_: None)
    model = tmp_path / "mosaic.pth"
    record = RunRecord(Options(method="fast", checkpoint=str(model)).to_dict(), {})
    output = viewer.add_image(widget.content.value.data, name="fast", rgb=True)
    output.metadata[RECORD_KEY] = record.to_dict()
    viewer.layers.selection.active = output
    widget.load_recipe.clicked.emit()
    assert widget.method.value == "fast" and widget.checkpoint.value == model
    assert widget.options()["checkpoint"] == str(model)


def test_a_caffe_layout_file_is_chosen_by_its_layout_and_restored(
    widget, viewer, monkeypatch, tmp_path
):
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", lambda *_: None)
    weights = tmp_path / "vgg19-caffe.pth"
    widget.vgg.value = "caffe file"
    assert not widget.vgg_file.native.isHidden()  # shown (the test window is not)
    widget.vgg_file.value = weights
    assert widget.options()["vgg"] == f"caffe:{weights}"
    record = RunRecord(Options.from_kwargs(widget.options()).to_dict(), {})
    output = viewer.add_image(widget.content.value.data, name="result", rgb=True)
    output.metadata[RECORD_KEY] = record.to_dict()
    widget.vgg.value = "bundled"
    viewer.layers.selection.active = output
    widget.load_recipe.clicked.emit()
    assert widget.vgg.value == "caffe file" and widget.vgg_file.value == weights
