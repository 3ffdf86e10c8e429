"""The *Explore* section: sweep a parameter, compare results side by side, fade a result
over its content.

It composes the sweep controls (:mod:`.sweep`) and the comparison controls
(:mod:`.compare`); the dock hands it what they read of the rest of the dock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .compare import CompareControls
from .controls import Section
from .sweep import SweepControls

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from .request import RunRequest


class ExploreSection(Section):
    """``sweep_parameter``, ``sweep_values``, ``sweep``, ``compare``, ``link_results``,
    ``fade``."""

    gatys_only = ("sweep_parameter", "sweep_values", "sweep")

    def __init__(
        self,
        viewer: napari.Viewer,
        *,
        options: Callable[[], dict[str, Any]],
        prepare: Callable[..., RunRequest],
        submit: Callable[[RunRequest], None],
        inputs: Callable[[], tuple[Layer | None, Layer | None]],
        output: Callable[[], Layer | None],
    ) -> None:
        self.sweeps = SweepControls(viewer, options, prepare, submit)
        self.comparison = CompareControls(viewer, inputs, output)
        super().__init__("explore", [*self.sweeps.widgets, *self.comparison.widgets])

    def options(self) -> dict[str, Any]:
        return {}

    def set_options(self, values: dict[str, Any]) -> list[str]:
        return []
