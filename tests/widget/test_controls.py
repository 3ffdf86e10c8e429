"""The widget's controls follow the option table, and a recipe round trip restores every
one of them."""

from __future__ import annotations

import pytest

from napari_nst._wording import tooltip
from napari_nst.core.options import BY_NAME, Options


def test_every_control_of_an_option_has_the_tables_tooltip_and_choices(widget):
    names = widget.controlled()
    assert {"method", "preset", "size", "iterations", "style_weight", "pyramid"} <= set(names)
    for name in names:
        control, spec = getattr(widget, name), BY_NAME[name]
        assert control.tooltip == tooltip(spec)
        if spec.choices and hasattr(control, "choices"):
            offered = {getattr(c, "value", c) for c in control.choices} - {"custom"}
            assert offered == set(spec.choices), name


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
