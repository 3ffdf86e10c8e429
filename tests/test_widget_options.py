"""The widget's controls follow the option table, and a recipe round trip restores every
one of them."""

from __future__ import annotations

import pytest

from napari_nst._layers import RECORD_KEY
from napari_nst._wording import tooltip
from napari_nst.core.options import BY_NAME, Options
from napari_nst.core.provenance import RunRecord

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


def test_every_control_of_an_option_has_the_tables_tooltip_and_choices(widget):
    names = widget.controlled()
    assert {"method", "preset", "size", "iterations", "style_weight", "pyramid"} <= set(names)
    for name in names:
        control, spec = getattr(widget, name), BY_NAME[name]
        assert control.tooltip == tooltip(spec)
        if spec.choices and hasattr(control, "choices"):
            offered = {getattr(c, "value", c) for c in control.choices} - {"custom"}
            assert offered == set(spec.choices), name


def test_a_recipe_round_trip_restores_every_control(widget, monkeypatch):
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", lambda *_: None)
    assert set(CHANGED) | FAST_ONLY == set(widget.controlled())  # a new control needs a value
    start = {name: getattr(widget, name).value for name in CHANGED}
    for name, value in CHANGED.items():
        assert start[name] != value, name
        getattr(widget, name).value = value
    assert {name: getattr(widget, name).value for name in CHANGED} == CHANGED
    changed = widget.options()
    record = RunRecord(Options.from_kwargs(changed).to_dict(), {"content": "photo"})
    viewer = widget._viewer
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


def test_a_fast_recipe_restores_the_method_and_its_model(widget, monkeypatch, tmp_path):
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", lambda *_: None)
    model = tmp_path / "mosaic.pth"
    record = RunRecord(Options(method="fast", checkpoint=str(model)).to_dict(), {})
    output = widget._viewer.add_image(widget.content.value.data, name="fast", rgb=True)
    output.metadata[RECORD_KEY] = record.to_dict()
    widget._viewer.layers.selection.active = output
    widget.load_recipe.clicked.emit()
    assert widget.method.value == "fast" and widget.checkpoint.value == model
    assert widget.options()["checkpoint"] == str(model)


def test_the_style_picker_starts_on_another_layer_than_the_content(
    make_napari_viewer, content_rgb, style_rgb
):
    from napari_nst._widget import StyleTransferWidget

    viewer = make_napari_viewer()
    viewer.add_image(content_rgb, name="photo")
    widget = StyleTransferWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.content.value is widget.style.value  # one layer: nothing else to pick
    viewer.add_image(style_rgb, name="painting")
    assert widget.content.value.name == "photo" and widget.style.value.name == "painting"
    widget.content.value = viewer.layers["painting"]
    assert widget.style.value.name == "photo"


def test_a_caffe_layout_file_is_chosen_by_its_layout_and_restored(widget, monkeypatch, tmp_path):
    monkeypatch.setattr("napari_nst._widget.recipes.show_info", lambda *_: None)
    weights = tmp_path / "vgg19-caffe.pth"
    widget.vgg.value = "caffe file"
    assert not widget.vgg_file.native.isHidden()  # shown (the test window is not)
    widget.vgg_file.value = weights
    assert widget.options()["vgg"] == f"caffe:{weights}"
    record = RunRecord(Options.from_kwargs(widget.options()).to_dict(), {})
    output = widget._viewer.add_image(widget.content.value.data, name="result", rgb=True)
    output.metadata[RECORD_KEY] = record.to_dict()
    widget.vgg.value = "bundled"
    widget._viewer.layers.selection.active = output
    widget.load_recipe.clicked.emit()
    assert widget.vgg.value == "caffe file" and widget.vgg_file.value == weights


def test_settings_and_records_with_old_option_names_set_todays_controls(widget):
    assert widget.set_options({"weights": "random"}) == []
    assert widget.vgg.value == "random"
    assert widget.options()["vgg"] == "random" and "weights" not in widget.options()
    # init has no control of its own (presets set it): the note names today's choice.
    assert widget.set_options({"init": "blend"}) == ["init='noisy'"]


def test_every_control_starts_at_the_tables_default_and_spans_its_range(
    make_napari_viewer, content_rgb
):
    """A fresh dock (nothing remembered) runs the option table's defaults; number
    controls span the table's range (size also takes 0: the device's default)."""
    from napari_nst._widget import StyleTransferWidget
    from napari_nst.core.options import TABLE

    viewer = make_napari_viewer()
    viewer.add_image(content_rgb, name="photo")
    widget = StyleTransferWidget(viewer)

    defaults, options = Options().to_dict(), widget.options()
    follows = {"size": "the device's default", "luminance_only": "the content: gray here?",
               "style_strength": "not an option of a run: it sets style_weight",
               "output_size": "napari lays a result of any size over the content",
               "vgg": "'auto' is shown as what it is: bundled"}  # fmt: skip
    for name in set(widget.controlled()) - set(follows):
        assert options.get(name) == defaults[name], name
    assert options["size"] is None or options["size"] == widget.size.value
    assert options["luminance_only"] == (not widget.content.value.rgb)
    assert options["output_size"] == "working" and options["vgg"] == "bundled"
    for spec in TABLE:
        if spec.name not in widget.controlled() or spec.range is None:
            continue
        control, (low, high) = getattr(widget, spec.name), spec.range
        assert (control.min, control.max) in ((low, high), (0, high)), spec.name


def test_a_control_is_found_by_its_former_name_with_a_deprecation_warning(widget):
    with pytest.warns(DeprecationWarning, match="control 'weights' is now 'vgg'"):
        assert widget.weights is widget.vgg
    with pytest.warns(DeprecationWarning, match="control 'weights_file' is now 'vgg_file'"):
        assert widget["weights_file"] is widget.vgg_file
