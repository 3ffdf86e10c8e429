"""The Style Transfer widget's provenance controls: load a run's recipe, export it.

Every output layer carries its run record in ``metadata["napari_nst"]``, and a
record is a recipe (:mod:`napari_nst.core.recipe`). *Load recipe from layer* puts
it back into the widget, so a result can be tuned from where it was made;
*Export recipe…* writes it as JSON for ``napari-nst stylize --recipe``, which
makes the same image from the same files on the same device.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import FileEdit, PushButton, Widget
from napari.utils.notifications import show_error, show_info

from ._artistic import CUSTOM
from ._layers import RECORD_KEY, displayed_axes

if TYPE_CHECKING:
    from napari.layers import Layer

    from ._widget import StyleTransferWidget

FROM_LAYER = frozenset({"contrast_limits", "spacing"})
"""Options that come from the content layer; the widget has no control for them."""
FIRST = frozenset({"method", "checkpoint", "preset", "style_strength", "style_weight",
                   "weights", "device", "luminance_only"})  # fmt: skip
"""Controls :func:`fill_controls` sets on their own terms: in an order (each changes others), or
where a value needs translating (a file, a device this machine may lack, "auto")."""


def controlled(widget: StyleTransferWidget) -> list[str]:
    """The options of the option table that ``widget`` has a control for."""
    from .core.option_table import TABLE

    return [
        spec.name
        for spec in TABLE
        if isinstance(control := getattr(widget, spec.name, None), Widget)
        and hasattr(control, "value")
    ]


def add_recipe_controls(widget: StyleTransferWidget) -> list[Widget]:
    """Create ``load_recipe``, ``recipe_file`` and ``export_recipe`` on ``widget``."""
    widget.load_recipe = PushButton(name="load_recipe", text="Load recipe from layer")
    widget.load_recipe.tooltip = "Fill the settings from the selected output layer's record."
    widget.recipe_file = FileEdit(
        name="recipe_file", label="recipe file", mode="w", filter="*.json", nullable=True
    )
    widget.recipe_file.tooltip = "Where Export recipe writes (asked for when blank)."
    widget.export_recipe = PushButton(name="export_recipe", text="Export recipe…")
    widget.export_recipe.tooltip = (
        "Save the selected output layer's record as JSON: `napari-nst stylize CONTENT "
        "STYLE --recipe FILE -o OUT` makes the same image on the same device."
    )
    widget.load_recipe.changed.connect(lambda: load_recipe(widget))
    widget.export_recipe.changed.connect(lambda: export_recipe(widget))
    return [widget.load_recipe, widget.recipe_file, widget.export_recipe]


def load_recipe(widget: StyleTransferWidget) -> bool:
    """Fill the widget from the selected layer's record; False (and an error) if it has none."""
    from .core.recipe import parse_recipe

    layer, record = _selected_record(widget, "Load recipe")
    if record is None:
        return False
    try:
        recipe = parse_recipe(record, f"the recipe of {layer.name!r}")
        notes = fill_controls(widget, recipe.options, record.get("sources"))
    except ValueError as exc:
        show_error(f"Load recipe: {exc}")
        return False
    where = f"; not set by the widget: {', '.join(notes)}" if notes else ""
    show_info(f"Settings of {layer.name!r} loaded{where}")
    return True


def export_recipe(widget: StyleTransferWidget, path: str | Path | None = None) -> Path | None:
    """Write the selected layer's record as JSON to ``path`` (else *recipe file*, else asked)."""
    from ._batch_item import write_json

    layer, record = _selected_record(widget, "Export recipe")
    if record is None:
        return None
    path = path or widget.recipe_file.value or _ask_path(widget, layer.name)
    if not path:
        return None
    try:
        write_json(Path(path).expanduser(), json.loads(json.dumps(record)))
    except (OSError, TypeError, ValueError) as exc:
        show_error(f"Export recipe: cannot write {path}: {exc}")
        return None
    widget.recipe_file.value = path
    unfinished = f" (the run was {record.get('status')})" if record.get("status") != "done" else ""
    show_info(f"Recipe of {layer.name!r} written to {path}{unfinished}")
    return Path(path)


def _selected_record(
    widget: StyleTransferWidget, action: str
) -> tuple[Layer | None, dict[str, Any] | None]:
    layer = widget._viewer.layers.selection.active
    record = layer.metadata.get(RECORD_KEY) if layer is not None else None
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        what = "no layer is selected"
        if layer is not None:
            what = f"layer {layer.name!r} has no run record"
        show_error(f"{action}: {what}; select an output layer of a style transfer run")
        return layer, None
    return layer, record


def _ask_path(widget: StyleTransferWidget, name: str) -> str | None:
    """A save dialog (None when dismissed), suggesting a file named after the layer."""
    from magicgui.application import use_app

    suggested = re.sub(r"[^\w.-]+", "_", name).strip("_") or "recipe"
    show = use_app().get_obj("show_file_dialog")
    return show("w", "Export recipe", f"{suggested}.json", "*.json", widget.native)


def fill_controls(
    widget: StyleTransferWidget, options: dict[str, Any], sources: object
) -> list[str]:
    """Set every control from ``options``; the names of options no control stands for."""
    from .core.options import DEFAULT_STYLE_WEIGHT, STYLE_STRENGTH_RANGE, Options

    values = Options().to_dict() | options
    widget.method.value = values["method"]  # first: it resizes and hides controls
    if values["checkpoint"]:
        widget.checkpoint.value = values["checkpoint"]
    _set_layers(widget, sources)
    widget.preset.value = values["preset"] or CUSTOM  # before the boxes it fills
    strength = values["style_strength"]
    style_weight = values["style_weight"]
    if strength is not None:
        style_weight = DEFAULT_STYLE_WEIGHT * 10.0**strength
    elif style_weight > 0:
        low, high = STYLE_STRENGTH_RANGE
        strength = min(high, max(low, math.log10(style_weight / DEFAULT_STYLE_WEIGHT)))
    if strength is not None:
        widget.style_strength.value = strength  # before the weight it sets
    for name in controlled(widget):
        if name not in FIRST:
            getattr(widget, name).value = _control_value(name, values[name])
    widget.style_weight.value = style_weight
    if values["luminance_only"] is not None:  # None: the content decides
        widget.luminance_only.value = values["luminance_only"]
    _set_weights(widget, values["weights"])
    notes = _set_device(widget, values["device"])
    notes += _match_layer(widget, values)
    defaults = Options().to_dict()
    notes += [
        f"{key}={value!r}"
        for key, value in options.items()
        if key not in {*controlled(widget), *FROM_LAYER} and value != defaults[key]
    ]
    return notes


def _control_value(name: str, value: Any) -> Any:
    """An option's value as its control holds it: 0 for "unset" numbers, text for lists."""
    if name in ("size", "early_stop_tol"):
        return value or 0
    if name == "style_blend_weights":
        return ",".join(f"{v:g}" for v in value) if value else ""
    if name == "label_styles":
        if isinstance(value, dict):
            return ",".join(f"{label}:{style}" for label, style in value.items())
        return value or ""
    return value


def _set_layers(widget: StyleTransferWidget, sources: object) -> None:
    """Pick the record's content and style layers where layers of those names exist."""
    sources = sources if isinstance(sources, dict) else {}
    for role in ("content", "style"):
        picker = getattr(widget, role)
        layer = next((c for c in picker.choices if c.name == sources.get(role)), None)
        if layer is not None:
            picker.value = layer


def _set_weights(widget: StyleTransferWidget, weights: str) -> None:
    weights = "bundled" if weights == "auto" else weights
    if weights in widget.weights.choices and weights not in ("file", "caffe file"):
        widget.weights.value = weights
    else:
        caffe = weights.startswith("caffe:")
        widget.weights.value = "caffe file" if caffe else "file"
        widget.weights_file.value = weights.removeprefix("caffe:")


def _set_device(widget: StyleTransferWidget, device: str) -> list[str]:
    choices = widget.device.choices
    for candidate in (device, f"{device}:0"):
        if candidate in choices:
            widget.device.value = candidate
            return []
    return [f"device={device!r} (not available here)"]


def _match_layer(widget: StyleTransferWidget, values: dict[str, Any]) -> list[str]:
    """Gray content's window is the run's: restore it; report a different pixel size."""
    content = widget.content.value
    if content is None:
        return []
    limits = values["contrast_limits"]
    if limits is not None and not content.rgb:
        content.contrast_limits = limits
    axes = displayed_axes(content, widget._viewer)
    spacing = values["spacing"]
    if spacing is not None and [abs(float(content.scale[a])) for a in axes] != list(spacing):
        return [f"spacing={spacing!r} (the content layer's pixel size differs)"]
    return []
