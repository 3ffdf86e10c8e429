"""The dock's essentials, always in view: what to stylise, with what, how strongly, how big.

Content and style pickers, method (or the fast model's checkpoint), preset, style
strength (or, for wct and adain, alpha), size and iterations. A preset and the strength
slider stand for loss weights, which live in their own section: the dock forwards
``weights_wanted`` to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSlider, SpinBox, create_widget

from .controls import follow_table

CUSTOM = "custom"
"""The preset choice that means "the weights as they are"."""


class Essentials(Container):
    """``content``, ``style``, ``method``, ``checkpoint``, ``preset``, ``style_strength``,
    ``alpha``, ``size``, ``iterations``; ``weights_wanted(values)`` is called with the loss weights
    a preset or the strength slider asks for."""

    def __init__(self, gatys_size: int, weights_wanted: Callable[[dict[str, float]], None]):
        from ..core.fast import sample_model
        from ..core.options import METHODS, PRESETS, STYLE_STRENGTH_RANGE, Options

        defaults = Options()
        low, high = STYLE_STRENGTH_RANGE
        self.gatys_size = gatys_size
        self._weights_wanted = weights_wanted
        self.content = create_widget(annotation="napari.layers.Image", name="content")
        self.style = create_widget(annotation="napari.layers.Image", name="style")
        self.method = ComboBox(name="method", choices=list(METHODS), value="gatys")
        self.checkpoint = FileEdit(
            name="checkpoint", visible=False, filter="*.pth *.pt *.safetensors",
            value=sample_model(),
        )  # fmt: skip
        self.preset = ComboBox(name="preset", choices=[CUSTOM, *PRESETS], value=CUSTOM)
        self.style_strength = FloatSlider(
            name="style_strength", label="style strength", value=0.0, min=low, max=high,
            step=0.1,
        )  # fmt: skip
        self.alpha = FloatSlider(
            name="alpha", value=defaults.alpha, min=0.0, max=1.0, step=0.05, visible=False
        )
        self.alpha.tooltip = (
            "How much style, from 0 (the content) to 1 (all style). After a run, moving it "
            "redecodes the result in place (the last level, no encoding again)."
        )
        self.size = SpinBox(name="size", value=gatys_size, min=0, max=16384, step=64)
        self.size.label = "size (0 = auto)"
        self.iterations = SpinBox(
            name="iterations", value=defaults.iterations, min=1, max=100_000, step=50
        )
        super().__init__(name="essentials", labels=True, widgets=[
            self.content, self.style, self.method, self.checkpoint, self.preset,
            self.style_strength, self.alpha, self.size, self.iterations,
        ])  # fmt: skip
        self.margins = (0, 0, 0, 0)
        follow_table(list(self))
        self.content.changed.connect(self.distinct_style)
        self.method.changed.connect(self._on_method)
        self.preset.changed.connect(self._on_preset)
        self.style_strength.changed.connect(self._on_strength)
        self.distinct_style()

    def options(self) -> dict[str, Any]:
        fast = self.method.value == "fast"
        options: dict[str, Any] = {
            "method": self.method.value,
            "checkpoint": str(self.checkpoint.value) if fast else None,
            "iterations": self.iterations.value,
            "size": self.size.value or None,
            "alpha": self.alpha.value,
        }
        if self.preset.value != CUSTOM:
            options["preset"] = self.preset.value
        return options

    def set_options(self, values: dict[str, Any]) -> None:
        """Method first (it resizes and hides), then preset and strength (they ask for
        weights, which the loss section sets exactly afterwards)."""
        from ..core.options import strength_for

        self.method.value = values["method"]
        if values["checkpoint"]:
            self.checkpoint.value = values["checkpoint"]
        self.preset.value = values["preset"] or CUSTOM
        strength = values["style_strength"]
        if strength is None and values["style_weight"] > 0:
            strength = strength_for(values["style_weight"])
        if strength is not None:
            self.style_strength.value = strength
        self.size.value = values["size"] or 0
        self.iterations.value = values["iterations"]
        self.alpha.value = values["alpha"]

    def set_layers(self, sources: object) -> None:
        """Pick the record's content and style layers where layers of those names exist."""
        sources = sources if isinstance(sources, dict) else {}
        for role in ("content", "style"):
            picker = getattr(self, role)
            layer = next((c for c in picker.choices if c.name == sources.get(role)), None)
            if layer is not None:
                picker.value = layer

    def distinct_style(self, *_: Any) -> None:
        """Keep the style on another layer than the content where there is one."""
        content = self.content.value
        if content is None or self.style.value is not content:
            return
        other = next((layer for layer in self.style.choices if layer is not content), None)
        if other is not None:
            self.style.value = other

    @property
    def is_stack(self) -> bool:
        """The content has planes beyond the one on screen."""
        content = self.content.value
        return content is not None and content.ndim > (3 if content.rgb else 2)

    def _on_method(self, method: str) -> None:
        from ..core.options import UNIVERSAL

        gatys = method == "gatys"
        for control in (self.preset, self.style_strength, self.iterations):
            control.visible = gatys
        self.style.visible = method != "fast"
        self.checkpoint.visible = method == "fast"
        self.alpha.visible = method in UNIVERSAL
        if not gatys and self.size.value == self.gatys_size:
            self.size.value = 0  # one-pass methods paint at the image's own resolution
        elif gatys and self.size.value == 0:
            self.size.value = self.gatys_size

    def _on_preset(self, name: str) -> None:
        from ..core.options import PRESETS, Options, strength_for

        if name == CUSTOM:
            return
        defaults, values = Options(), PRESETS[name]
        style_weight = values.get("style_weight", defaults.style_weight)
        # The slider first: it asks for a weight too, which then gets the preset's exactly.
        self.style_strength.value = strength_for(style_weight)
        self._weights_wanted({
            "content_weight": values.get("content_weight", defaults.content_weight),
            "style_weight": style_weight,
            "tv_weight": values.get("tv_weight", defaults.tv_weight),
            "style_scale": values.get("style_scale", defaults.style_scale),
        })  # fmt: skip

    def _on_strength(self, strength: float) -> None:
        from ..core.options import style_weight_for

        self._weights_wanted({"style_weight": style_weight_for(strength)})
