"""The Style Transfer widget's controls for scientific images: which planes, and how
intensities come back (stack mode, slice weight, Dask scheduler, luminance, range).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, Widget

if TYPE_CHECKING:
    from napari.layers import Image

    from ._widget import StyleTransferWidget

STACK_MODES = [("current slice", "slice"), ("whole stack", "all")]


WEIGHT_DECIMALS = 4
"""Decimals a weight box keeps: normalised weights span 0.01 to 100 (strength ±2)."""


def weight_box(name: str, value: float, step: float) -> FloatSpinBox:
    """A weight box stepping by ``step`` that keeps :data:`WEIGHT_DECIMALS` decimals (Qt
    rounds what it shows and keeps, and magicgui derives the decimals from the step)."""
    box = FloatSpinBox(name=name, min=0.0, max=1e12, step=10.0**-WEIGHT_DECIMALS)
    box.native.setSingleStep(step)
    box.value = value
    return box


def add_image_controls(widget: StyleTransferWidget) -> list[Widget]:
    """Create ``output_size``, ``stack``, ``slice_weight``, ``dask_scheduler``,
    ``luminance_only`` and ``output_range`` on ``widget`` (reachable by name), wired
    to each other and to the content picker."""
    from .core.options import Options

    defaults = Options()
    widget.output_size = ComboBox(
        name="output_size",
        label="result size",
        choices=[("as computed", "working"), ("content's size", "content")],
        value="working",  # in napari the result is laid over the content at any size
        tooltip="as computed: the result at its working size, laid over the content "
        "(no resampling blur; Full size computes at the content's resolution); "
        "content's size: enlarged to the content's pixels.",
    )
    widget.stack = ComboBox(
        name="stack",
        choices=STACK_MODES,
        value=defaults.stack,
        tooltip="The plane on screen, or every plane along the axes not on screen.",
    )
    widget.slice_weight = weight_box("slice_weight", defaults.slice_weight, step=0.1)
    widget.slice_weight.label = "slice weight"
    widget.slice_weight.tooltip = "Pull each slice towards its neighbour's result (no flicker)."
    widget.slice_weight.visible = False
    widget.dask_scheduler = LineEdit(name="dask_scheduler", visible=False)
    widget.dask_scheduler.label = "Dask scheduler"
    widget.dask_scheduler.tooltip = (
        "Blank: this process. A scheduler address (tcp://host:8786) or local[:N] (N local "
        "worker processes): one task per plane, planes independent (no slice weight)."
    )
    widget.luminance_only = CheckBox(
        name="luminance_only",
        text="luminance only",
        value=False,
        tooltip="Transfer texture on brightness only: gray stays gray, colours stay put.",
    )
    widget.output_range = ComboBox(
        name="output_range",
        label="output range",
        choices=["original", "unit"],
        value=defaults.output_range,
        tooltip="Gray results in the content's intensities (overlay it) or in [0, 1].",
    )

    def on_stack(value: str) -> None:
        widget.slice_weight.visible = widget.dask_scheduler.visible = value == "all"

    def on_content(layer: Image | None) -> None:
        """Gray content defaults to a gray (luminance-only) result, colour to colour."""
        widget.luminance_only.value = layer is not None and not layer.rgb

    widget.stack.changed.connect(on_stack)
    widget.content.changed.connect(on_content)
    on_content(widget.content.value)
    return [
        widget.output_size,
        widget.stack,
        widget.slice_weight,
        widget.dask_scheduler,
        widget.luminance_only,
        widget.output_range,
    ]
