"""Building blocks of the Style Transfer dock: collapsible sections and a few controls.

A :class:`Section` is a titled group of controls that opens and closes (superqt's
``QCollapsible``, which napari already brings). It stands alone: it knows its own
controls, turns them into engine options (``options()``) and back
(``set_options()``), and shows only those that apply to a method
(``show_for()``); it never reaches into the dock, which composes the sections and
wires what one changes in another.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, FloatSpinBox, Select, Widget

SECTIONS = {
    "look": "Look",
    "loss": "Loss weights",
    "styles": "More styles & regions",
    "stacks": "Stacks & cluster",
    "engine": "Engine",
    "explore": "Explore: sweep, compare, fade",
    "recipes": "Recipes",
}
"""Section key → title, in the dock's order (the first five are the option table's
groups after the essentials)."""

WEIGHT_DECIMALS = 4
"""Decimals a weight box keeps: normalised weights span 0.1 to 10 (strength ±2) and more."""


def weight_box(name: str, value: float, step: float) -> FloatSpinBox:
    """A weight box stepping by ``step`` that keeps :data:`WEIGHT_DECIMALS` decimals (Qt
    rounds what it shows and keeps, and magicgui derives the decimals from the step)."""
    box = FloatSpinBox(name=name, min=0.0, max=1e12, step=10.0**-WEIGHT_DECIMALS)
    box.native.setSingleStep(step)
    box.value = value
    return box


class LayerSelect(Select):
    """A multi-select of layers whose selection survives a layer being renamed.

    magicgui matches list items by their text, so a renamed layer would come
    back unselected; the chosen layers are remembered by identity instead.
    """

    def reset_choices(self, *_: Any) -> None:
        chosen = list(self.value)
        super().reset_choices()
        self.value = [layer for layer in chosen if layer in self.choices]


def follow_table(controls: list[Widget]) -> None:
    """Give each control of an option the table's tooltip and range (a size box keeps 0,
    which stands for the device's default)."""
    from .._wording import tooltip
    from ..core.options import BY_NAME

    for control in controls:
        spec = BY_NAME.get(control.name)
        if spec is None:
            continue
        control.tooltip = tooltip(spec)
        if spec.range is not None and hasattr(control, "max"):
            low, high = spec.range
            control.max = high
            control.min = 0 if control.name == "size" else low


def option_value(name: str, value: Any) -> Any:
    """A control's value as the engine option it stands for (0 or blank: unset)."""
    if name in ("size", "early_stop_tol"):
        return value or None
    if name in ("style_blend_weights", "label_styles"):
        return value.strip() or None
    return value


def control_value(name: str, value: Any) -> Any:
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


class Section(Container):
    """A titled, collapsible group of controls; closed until opened.

    ``options()`` gives the engine option of every control named after one (in the
    option table), ``set_options()`` sets them back; subclasses add what needs more.
    """

    gatys_only: tuple[str, ...] = ()
    """Controls outside the option table that only the optimisation uses."""

    def __init__(self, key: str, widgets: list[Widget]) -> None:
        from superqt import QCollapsible

        super().__init__(name=key, labels=False)
        follow_table(widgets)
        self.controls = Container(name=f"{key}_controls", widgets=widgets, labels=True)
        self.box = QCollapsible(SECTIONS[key].replace("&", "&&"))  # "&": a Qt shortcut
        self.box.setDuration(0)  # no animation: a dock is not a slide show
        self.box.setCollapsedIcon("▸")
        self.box.setExpandedIcon("▾")
        self.box.addWidget(self.controls.native)
        self.box.layout().setContentsMargins(0, 0, 0, 0)
        layout = self.native.layout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.box)
        self.method = "gatys"

    # -- options -----------------------------------------------------------------------

    def option_controls(self) -> dict[str, Widget]:
        """This section's controls that stand for an option of the option table."""
        from ..core.options import BY_NAME

        return {w.name: w for w in self.controls if w.name in BY_NAME and hasattr(w, "value")}

    def options(self) -> dict[str, Any]:
        return {name: option_value(name, w.value) for name, w in self.option_controls().items()}

    def set_options(self, values: dict[str, Any]) -> list[str]:
        """Set each control from ``values`` (every option present: defaults filled in);
        notes on what could not be set as asked."""
        for name, control in self.option_controls().items():
            control.value = control_value(name, values[name])
        return []

    def set_method(self, method: str) -> None:
        """Show only the controls ``method`` uses (the option table says which)."""
        self.method = method
        self.update_visibility()

    def update_visibility(self) -> None:
        for control in self.controls:
            control.visible = self.applies(control.name)

    def applies(self, name: str) -> bool:
        """Whether control ``name`` is shown now (subclasses add their own conditions)."""
        from ..core.options import BY_NAME

        if name in BY_NAME:
            return self.method in BY_NAME[name].methods
        return self.method == "gatys" or name not in self.gatys_only

    @property
    def has_visible_controls(self) -> bool:
        return any(self.applies(w.name) for w in self.controls)

    # -- the box -----------------------------------------------------------------------

    @property
    def expanded(self) -> bool:
        return self.box.isExpanded()

    @expanded.setter
    def expanded(self, value: bool) -> None:
        if value:
            self.box.expand(animate=False)
        else:
            self.box.collapse(animate=False)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.controls[key]
        return super().__getitem__(key)

    def reset_choices(self, *_: Any) -> None:
        self.controls.reset_choices()
