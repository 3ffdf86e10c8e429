"""Collapsible sections of the Style Transfer dock: a titled group of controls that
opens and closes (superqt's ``QCollapsible``, which napari already brings).

A section is a magicgui ``Container`` holding one ``QCollapsible``; its controls sit
in an inner labelled ``Container``, reachable by name (``section["seed"]``) and
refreshed with the layer list like any magicgui control.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, Widget

SECTIONS = {
    "look": "Look",
    "loss": "Loss weights",
    "styles": "More styles & regions",
    "stacks": "Stacks & cluster",
    "engine": "Engine",
    "explore": "Explore: sweep, compare, blend",
    "recipes": "Recipes",
}
"""Section key → title, in the dock's order (the first five are the option table's
groups after the essentials)."""


class Section(Container):
    """A titled, collapsible group of controls; closed until opened."""

    def __init__(self, name: str, title: str, widgets: list[Widget]) -> None:
        from superqt import QCollapsible

        super().__init__(name=name, labels=False)
        self.controls = Container(name=f"{name}_controls", widgets=widgets, labels=True)
        self.box = QCollapsible(title.replace("&", "&&"))  # "&" marks a Qt shortcut
        self.box.setDuration(0)  # no animation: a dock is not a slide show
        self.box.setCollapsedIcon("▸")
        self.box.setExpandedIcon("▾")
        self.box.addWidget(self.controls.native)
        self.box.layout().setContentsMargins(0, 0, 0, 0)
        layout = self.native.layout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.box)

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
