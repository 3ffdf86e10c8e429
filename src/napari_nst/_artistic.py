"""The Style Transfer widget's artistic controls: presets, one strength knob, colour.

Presets and the strength slider *fill* the weight boxes rather than hide them, so
a user who starts from "bold" can still see, and then tune, what it set.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, FloatSlider, FloatSpinBox, Widget

if TYPE_CHECKING:
    from ._widget import StyleTransferWidget

CUSTOM = "custom"


def add_artistic_controls(widget: StyleTransferWidget) -> list[Widget]:
    """Create ``preset``, ``style_strength``, ``style_scale``, ``preserve_color``,
    ``early_stop_tol`` and ``pyramid`` on ``widget`` (reachable by name), wired to its
    weight boxes."""
    from .core.options import DEFAULT_STYLE_WEIGHT, PRESETS, STYLE_STRENGTH_RANGE, Options

    low, high = STYLE_STRENGTH_RANGE
    defaults = Options()
    widget.preset = ComboBox(
        name="preset",
        choices=[CUSTOM, *PRESETS],
        value=CUSTOM,
        tooltip="Fill the weights with a named starting point, then tune.",
    )
    widget.style_strength = FloatSlider(
        name="style_strength", label="style strength", value=0.0, min=low, max=high, step=0.1
    )
    widget.style_strength.tooltip = (
        "One knob for the style/content balance (log10 scale; sets style weight)."
    )
    widget.style_scale = FloatSpinBox(
        name="style_scale", label="style scale", value=1.0, min=0.1, max=8.0, step=0.05
    )
    widget.style_scale.tooltip = "Style image size relative to the content's: < 1 coarser strokes."
    widget.preserve_color = ComboBox(
        name="preserve_color",
        label="preserve colour",
        choices=["none", "histogram", "luminance"],
        value="none",
        tooltip="Keep the content's colours: recolour the style (histogram), or "
        "transfer on brightness only (luminance).",
    )
    widget.early_stop_tol = FloatSpinBox(
        name="early_stop_tol", label="early stop", value=0.0, min=0.0, max=0.1, step=1e-4
    )
    widget.early_stop_tol.tooltip = (
        "Stop once the loss changes by less than this fraction 5 iterations in a row (0 = off)."
    )

    widget.pyramid = ComboBox(
        name="pyramid",
        label="coarse to fine",
        choices=["auto", "on", "off"],
        value="auto",
        tooltip="Optimise at 128 px first, then in √2 steps up to the size: large "
        "structures form cheaply (auto: on above 256 px).",
    )

    def on_preset(name: str) -> None:
        if name == CUSTOM:
            return
        values = PRESETS[name]
        style_weight = values.get("style_weight", defaults.style_weight)
        ratio = style_weight / DEFAULT_STYLE_WEIGHT
        # The slider first: it sets the weight too, which then gets the preset's exactly.
        widget.style_strength.value = min(high, max(low, math.log10(ratio)))
        widget.style_weight.value = style_weight
        widget.content_weight.value = values.get("content_weight", defaults.content_weight)
        widget.tv_weight.value = values.get("tv_weight", defaults.tv_weight)
        widget.style_scale.value = values.get("style_scale", defaults.style_scale)

    def on_strength(strength: float) -> None:
        widget.style_weight.value = DEFAULT_STYLE_WEIGHT * 10.0**strength

    widget.preset.changed.connect(on_preset)
    widget.style_strength.changed.connect(on_strength)
    return [
        widget.preset,
        widget.style_strength,
        widget.style_scale,
        widget.preserve_color,
        widget.early_stop_tol,
        widget.pyramid,
    ]


def artistic_options(widget: StyleTransferWidget) -> dict[str, Any]:
    """The engine options these controls stand for (the weights are already in the boxes)."""
    options: dict[str, Any] = {
        "style_scale": widget.style_scale.value,
        "preserve_color": widget.preserve_color.value,
        "early_stop_tol": widget.early_stop_tol.value or None,
        "pyramid": widget.pyramid.value,
    }
    if widget.preserve_color.value == "luminance":
        options["luminance_only"] = True
    if widget.preset.value != CUSTOM:
        options["preset"] = widget.preset.value
    return options
