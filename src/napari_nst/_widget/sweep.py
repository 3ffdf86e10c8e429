"""Parameter sweeps: one optimisation per value of a parameter, into one stack layer.

The runs go through the run queue, run k writing plane k of one output layer
shaped (N, H, W[, C]) whose leading axis is the sweep: its axis label lists the
values, and the viewer's text overlay names the value on screen while the user
scrubs the slider. The runs share the VGG weights and, unless the style scale is
what varies, the style targets (the engine caches both per process).
``metadata["napari_nst"]`` holds the latest run's record and, under ``"sweep"``,
the parameter, the values and every run's record (None for a run not made).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, LineEdit, PushButton, Widget
from napari.utils.notifications import show_error

from .. import _layers

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from .request import RunRequest

PARAMETERS = [
    ("style/content ratio (style weight)", "style_weight"),
    ("content weight", "content_weight"),
    ("TV weight", "tv_weight"),
    ("style scale", "style_scale"),
    ("iterations", "iterations"),
]
FACTORS = {"style_scale": (0.5, 1.0, 2.0), "iterations": (0.5, 1.0, 2.0)}
"""Default values around the current one (log-spaced); the weights get ×0.1, ×1, ×10."""
MAX_VALUES = 32


def sweep_values(text: str, parameter: str, current: float) -> list[float] | list[int]:
    """The values of a sweep: the comma-separated ``text``, or 3 around ``current``."""
    from ..core.options import Options

    if text.strip():
        try:
            values = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            message = f"sweep values must be numbers separated by commas; got {text!r}"
            raise ValueError(message) from None
        if not values or len(values) > MAX_VALUES:
            raise ValueError(f"a sweep takes 1 to {MAX_VALUES} values; got {len(values)}")
    else:
        base = current or getattr(Options(), parameter)
        values = [base * factor for factor in FACTORS.get(parameter, (0.1, 1.0, 10.0))]
        if parameter == "style_scale":
            values = [min(value, 8.0) for value in values]
        elif parameter == "iterations":
            values = [float(round(value)) for value in values]
    if any(not math.isfinite(value) for value in values):
        raise ValueError("sweep values must be finite numbers")
    if parameter != "iterations":
        return values
    if any(value != round(value) for value in values):
        raise ValueError(f"iterations are whole numbers; got {text!r}")
    return [max(1, round(value)) for value in values]


class SweepPlan:
    """One sweep's output: the (N, H, W[, C]) array, its layer once shown, the records."""

    def __init__(self, parameter: str, values: list[Any], request: RunRequest):
        rendering = request.run.rendering
        self.parameter, self.values = parameter, list(values)
        self.array = np.full((len(values), *rendering.shape), rendering.fill, rendering.dtype)
        self.records: list[dict[str, Any] | None] = [None] * len(values)
        self.name = f"{request.name} · {parameter} sweep"
        self.axis_label = f"{parameter}: " + ", ".join(f"{value:g}" for value in values)
        plane = _layers.output_geometry(
            request.selection, rendering.layout.plane_shape, rendering.result_plane
        )
        self.geometry = _sweep_geometry(request.selection, plane, self.axis_label)
        self.layer: Image | None = None
        self.on_layer: Any = None
        """Called with the plan when its layer is (re)made."""

    def describe(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "values": self.values, "records": self.records}


class SweepPlane:
    """Run k's destination: an output target and the layer it shares with the others."""

    def __init__(self, plan: SweepPlan, index: int) -> None:
        self.plan, self.index = plan, index
        self.parameter = plan.parameter

    @property
    def array(self) -> np.ndarray:
        return self.plan.array

    def write(self, index: tuple[int, ...], image: np.ndarray) -> None:
        self.plan.array[self.index] = image  # a sweep runs one plane: index is ()

    def publish(self, record: dict[str, Any]) -> dict[str, Any]:
        """The layer's record: this run's, plus the whole sweep's."""
        self.plan.records[self.index] = record
        return record | {"sweep": self.plan.describe()}

    def add_layer(self, viewer: Any, _data: Any, _name: str, _geometry: Any, record: dict,
                  rgb: bool, display: dict[str, Any] | None = None) -> Image:  # fmt: skip
        """The sweep's layer: made by its first preview, refreshed by the later runs'."""
        plan = self.plan
        if plan.layer is not None and plan.layer in viewer.layers:
            plan.layer.refresh(extent=False, highlight=False)
            return plan.layer
        plan.layer = _layers.add_output_layer(
            viewer, plan.array, plan.name, plan.geometry, self.publish(record), rgb, display
        )
        if plan.on_layer is not None:
            plan.on_layer(plan)
        return plan.layer


def _sweep_geometry(
    selection: _layers.Selection, geometry: dict[str, Any], label: str
) -> dict[str, Any]:
    """The plane's place in the world (``geometry``'s two plane axes), behind a sweep
    axis of unit steps."""
    rows, columns = selection.order[-2:]
    out: dict[str, Any] = {
        "scale": (1.0, geometry["scale"][rows], geometry["scale"][columns]),
        "translate": (0.0, geometry["translate"][rows], geometry["translate"][columns]),
    }
    if "units" in geometry:
        out["units"] = ("pixel", geometry["units"][rows], geometry["units"][columns])
    labels = geometry.get("axis_labels") or ("-2", "-1")
    out["axis_labels"] = (label, *(labels[axis] for axis in (rows, columns)))
    return out


class SweepControls:
    """``sweep_parameter``, ``sweep_values`` and ``sweep``: one run per value, queued.

    ``options()`` gives the dock's current options, ``prepare(**overrides)`` a run of
    them with ``overrides``, and ``submit(request)`` queues a run.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        options: Callable[[], dict[str, Any]],
        prepare: Callable[..., RunRequest],
        submit: Callable[[RunRequest], None],
    ) -> None:
        self._viewer, self._options, self._prepare, self._submit = (
            viewer, options, prepare, submit,
        )  # fmt: skip
        self.sweep_parameter = ComboBox(
            name="sweep_parameter", label="sweep", choices=PARAMETERS, value="style_weight"
        )
        self.sweep_parameter.tooltip = "The parameter a sweep varies, one run per value."
        self.sweep_values = LineEdit(name="sweep_values", label="sweep values")
        self.sweep_values.tooltip = (
            "Comma-separated values, like 0.3, 1, 3. Blank: the current value ×0.1, "
            "×1, ×10 (style scale and iterations: ×0.5, ×1, ×2)."
        )
        self.sweep = PushButton(name="sweep", text="Sweep")
        self.sweep.tooltip = "Queue one run per value; they fill one stack layer."
        self.widgets: list[Widget] = [self.sweep_parameter, self.sweep_values, self.sweep]
        self.latest: SweepPlan | None = None
        self._overlay = False
        self.sweep.changed.connect(self.run)
        viewer.dims.events.current_step.connect(self._show_value)
        viewer.layers.events.inserted.connect(self._show_value)
        viewer.layers.events.removed.connect(self._show_value)

    def run(self) -> None:
        """Validate every run of the sweep now, then queue them."""
        from ..core.devices import MemoryEstimateError

        parameter = self.sweep_parameter.value
        try:
            options = self._options()
            if options["method"] != "gatys":
                raise ValueError("a sweep varies the optimisation: choose method 'gatys'")
            values = sweep_values(self.sweep_values.value, parameter, options[parameter])
            runs = [self._prepare(**{parameter: value}) for value in values]
            if not runs[0].run.steerable or runs[0].run.planes != 1:
                raise ValueError(
                    "a sweep runs on one 2-D plane: choose stack 'current slice' "
                    "(and no Dask scheduler)"
                )
        except (MemoryEstimateError, ValueError) as exc:
            show_error(f"Sweep: {exc}")
            return
        plan = SweepPlan(parameter, values, runs[0])
        plan.on_layer = self._adopt
        for number, request in enumerate(runs):
            label = f"{request.name} · {parameter} = {values[number]:g}"
            self._submit(request.in_sweep(SweepPlane(plan, number), plan.name, label))

    def _adopt(self, plan: SweepPlan) -> None:
        self.latest = plan
        self._show_value()

    def _show_value(self, _event: object = None) -> None:
        """The swept value on screen, in the viewer's text overlay, while the layer shows."""
        viewer, plan = self._viewer, self.latest
        layer = plan.layer if plan is not None else None
        overlay = text_overlay(viewer)
        if plan is None or layer is None or layer not in viewer.layers:
            self.latest = None  # its layer is gone: let its array go
            if self._overlay:
                overlay.visible = self._overlay = False
            return
        axis = viewer.dims.ndim - layer.ndim
        point = viewer.dims.point[axis] if axis >= 0 else 0.0
        number = int(np.clip(round(float(point)), 0, len(plan.values) - 1))
        if not self._overlay:
            overlay.position = "top_center"  # clear of the scale bar and notifications
        overlay.text = f"{plan.parameter} = {plan.values[number]:g}"
        overlay.visible = self._overlay = True


def text_overlay(viewer: Any) -> Any:
    """The viewer's text overlay (``viewer.canvas.overlays`` from napari 0.9 on)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.overlays["text"] if canvas is not None else viewer.text_overlay
