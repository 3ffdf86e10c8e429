"""The Style Transfer widget's provenance controls: load a run's recipe, export it.

Every output layer carries its run record in ``metadata["napari_nst"]``, and a
record is a recipe (:mod:`napari_nst.core.provenance`). *Load recipe from layer* puts
it back into the widget, so a result can be tuned from where it was made;
*Export recipe…* writes it as JSON for ``napari-nst stylize --recipe``, which
makes the same image from the same files on the same device. *Restore defaults*
puts napari-nst's own settings back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import FileEdit, PushButton
from napari.utils.notifications import show_error, show_info

from .._layers import RECORD_KEY
from .controls import Section

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer


class RecipesSection(Section):
    """``load_recipe``, ``recipe_file``, ``export_recipe`` and ``restore_defaults``.

    ``fill(options, sources)`` sets the dock from a recipe's options (and picks the
    layers the record names), returning notes on what it could not set;
    ``restore()`` puts the defaults back.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        fill: Callable[[dict[str, Any], object], list[str]],
        restore: Callable[[], None],
        settings_file: Path,
    ) -> None:
        self._viewer, self._fill = viewer, fill
        self.load_recipe = PushButton(name="load_recipe", text="Load recipe from layer")
        self.load_recipe.tooltip = "Fill the settings from the selected output layer's record."
        self.recipe_file = FileEdit(
            name="recipe_file", label="recipe file", mode="w", filter="*.json", nullable=True
        )
        self.recipe_file.tooltip = "Where Export recipe writes (asked for when blank)."
        self.export_recipe = PushButton(name="export_recipe", text="Export recipe…")
        self.export_recipe.tooltip = (
            "Save the selected output layer's record as JSON: `napari-nst stylize CONTENT "
            "STYLE --recipe FILE -o OUT` makes the same image on the same device (for a "
            "CPU: one of the same maker)."
        )
        self.restore_defaults = PushButton(name="restore_defaults", text="Restore defaults")
        self.restore_defaults.tooltip = (
            "Every setting back to napari-nst's defaults (the last used ones come back "
            f"with napari; they are kept in {settings_file})."
        )
        super().__init__("recipes", [
            self.load_recipe, self.recipe_file, self.export_recipe, self.restore_defaults,
        ])  # fmt: skip
        self.load_recipe.changed.connect(self.load)
        self.export_recipe.changed.connect(lambda: self.export())
        self.restore_defaults.changed.connect(restore)

    def options(self) -> dict[str, Any]:
        return {}

    def set_options(self, values: dict[str, Any]) -> list[str]:
        return []

    def load(self) -> bool:
        """Fill the dock from the selected layer's record; False (and an error) if it has
        none."""
        from ..core.provenance import parse_recipe

        layer, record = self._selected_record("Load recipe")
        if record is None:
            return False
        try:
            recipe = parse_recipe(record, f"the recipe of {layer.name!r}")
            notes = self._fill(recipe.options, record.get("sources"))
        except ValueError as exc:
            show_error(f"Load recipe: {exc}")
            return False
        where = f"; not set by the widget: {', '.join(notes)}" if notes else ""
        show_info(f"Settings of {layer.name!r} loaded{where}")
        return True

    def export(self, path: str | Path | None = None) -> Path | None:
        """Write the selected layer's record as JSON to ``path`` (else *recipe file*, else
        asked)."""
        from ..core.files import write_json

        layer, record = self._selected_record("Export recipe")
        if record is None:
            return None
        path = path or self.recipe_file.value or _ask_path(self, layer.name)
        if not path:
            return None
        try:
            write_json(Path(path).expanduser(), json.loads(json.dumps(record)))
        except (OSError, TypeError, ValueError) as exc:
            show_error(f"Export recipe: cannot write {path}: {exc}")
            return None
        self.recipe_file.value = path
        status = record.get("status")
        unfinished = f" (the run was {status})" if status != "done" else ""
        show_info(f"Recipe of {layer.name!r} written to {path}{unfinished}")
        return Path(path)

    def _selected_record(self, action: str) -> tuple[Layer | None, dict[str, Any] | None]:
        layer = self._viewer.layers.selection.active
        record = layer.metadata.get(RECORD_KEY) if layer is not None else None
        if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
            what = "no layer is selected"
            if layer is not None:
                what = f"layer {layer.name!r} has no run record"
            show_error(f"{action}: {what}; select an output layer of a style transfer run")
            return layer, None
        return layer, record


def _ask_path(section: RecipesSection, name: str) -> str | None:
    """A save dialog (None when dismissed), suggesting a file named after the layer."""
    from magicgui.application import use_app

    suggested = re.sub(r"[^\w.-]+", "_", name).strip("_") or "recipe"
    show = use_app().get_obj("show_file_dialog")
    return show("w", "Export recipe", f"{suggested}.json", "*.json", section.native)
