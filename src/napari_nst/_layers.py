"""napari layers ↔ plain arrays: the only module that knows both worlds.

Inputs are copied out of layers on the main thread, so the engine never holds a
layer or a view into its data: a run cannot modify the user's layers, and a user
editing a layer cannot corrupt a run in progress.

The engine wants planes in its last two axes. The viewer may show any two axes
of a layer (a z–x view of a volume, say), so a selection reorders the layer's
axes as *non-displayed…, displayed row, displayed column* and the output goes
back through the inverse order, on the same world grid as the content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

RECORD_KEY = "napari_nst"


@dataclass(frozen=True)
class Selection:
    """What of a layer a run uses, and where its result belongs in the world."""

    data: Any  # engine order: stack axes…, rows, columns[, channels]
    order: tuple[int, ...]  # layer axis for each engine axis (channels excluded)
    index: tuple[int, ...] | None  # the shown plane in non-displayed axes; None = all
    spacing: tuple[float, float]  # physical pixel size of a plane (rows, columns)
    geometry: dict[str, Any]  # scale/translate/units/axis_labels of the output layer

    @property
    def stack_axes(self) -> int:
        return len(self.order) - 2

    def split(self, engine_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(spatial shape in engine order, channels) of an engine result, slabs made 3-D+."""
        planes_axes = self.stack_axes if self.index is None else 0
        spatial = engine_shape[: planes_axes + 2]
        if self.index is not None:  # one plane, kept as a 1-thick slab at its position
            spatial = (1,) * self.stack_axes + spatial
        return spatial, engine_shape[planes_axes + 2 :]


def select(layer: Image, viewer: napari.Viewer | None, whole_stack: bool) -> Selection:
    """The plane the viewer shows (or every plane), reordered for the engine.

    Multiscale layers contribute their full-resolution level. Numpy data is
    copied; lazy arrays (dask, zarr) stay lazy and are read plane by plane.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    spatial = layer.ndim
    rows, columns = displayed_axes(layer, viewer)
    others = tuple(axis for axis in range(spatial) if axis not in (rows, columns))
    order = (*others, rows, columns)
    channel = (spatial,) if getattr(layer, "rgb", False) else ()  # Labels have no channels
    view = _transpose(data, order + channel)
    index = None if whole_stack or not others else _shown_index(layer, viewer, others, data)
    content = view[index] if index is not None else view
    content = np.array(content, copy=True) if isinstance(content, np.ndarray) else content
    scale = tuple(float(s) for s in layer.scale)
    translate = [float(t) for t in layer.translate]
    for axis, position in zip(others, index or (), strict=False):
        translate[axis] += position * scale[axis]
    geometry: dict[str, Any] = {"scale": scale, "translate": tuple(translate)}
    for attribute in ("units", "axis_labels"):
        value = getattr(layer, attribute, None)
        if value is not None:
            geometry[attribute] = tuple(value)
    return Selection(content, order, index, (abs(scale[rows]), abs(scale[columns])), geometry)


def displayed_axes(layer: Image, viewer: napari.Viewer | None) -> tuple[int, int]:
    """The layer axes on screen as rows and columns (the last two when unsure)."""
    last_two = (layer.ndim - 2, layer.ndim - 1)
    if viewer is None or layer.ndim < 2:
        return last_two
    offset = viewer.dims.ndim - layer.ndim
    axes = [world - offset for world in viewer.dims.displayed[-2:]]
    if len(axes) != 2 or not all(0 <= axis < layer.ndim for axis in axes):
        return last_two
    return axes[0], axes[1]


def _shown_index(
    layer: Image, viewer: napari.Viewer | None, axes: tuple[int, ...], data: Any
) -> tuple[int, ...]:
    if viewer is None:
        return (0,) * len(axes)
    point = layer.world_to_data(viewer.dims.point[-layer.ndim :])
    return tuple(int(np.clip(round(float(point[axis])), 0, data.shape[axis] - 1)) for axis in axes)


def _transpose(data: Any, order: tuple[int, ...]) -> Any:
    if order == tuple(range(len(order))):
        return data
    if hasattr(data, "transpose"):
        return data.transpose(order)
    return np.transpose(np.asarray(data), order)


class OutputTarget:
    """The output layer's array, written plane by plane in the engine's axis order."""

    def __init__(
        self, selection: Selection, engine_shape: tuple[int, ...], dtype: np.dtype, fill: float
    ) -> None:
        spatial, channels = selection.split(engine_shape)
        layer_shape = [0] * len(spatial)
        for engine_axis, layer_axis in enumerate(selection.order):
            layer_shape[layer_axis] = spatial[engine_axis]
        self.array = np.full((*layer_shape, *channels), fill, dtype=dtype)
        channel_axes = tuple(range(len(spatial), self.array.ndim))
        self._engine_view = self.array.transpose(selection.order + channel_axes)
        self._depth = selection.stack_axes

    def write(self, index: tuple[int, ...], image: np.ndarray) -> None:
        """Put a plane (an engine ``Step.image`` at ``Step.index``) in place."""
        self._engine_view[tuple(index) + (0,) * (self._depth - len(index))] = image


def output_spec(content: Image, style_name: str, selection: Selection) -> dict[str, Any]:
    """What a run's output layer will be: name, place, sources, colormap."""
    sources: dict[str, Any] = {"content": content.name, "style": style_name}
    if selection.index is not None:
        sources["plane"] = list(selection.index)
    return {
        "name": f"{content.name} × {style_name}",
        "selection": selection,
        "sources": sources,
        "colormap": None if content.rgb else content.colormap.name,
    }


def output_geometry(
    selection: Selection, plane_shape: tuple[int, int], result_plane: tuple[int, int]
) -> dict[str, Any]:
    """The output layer's scale and translate: the content's, with larger pixels on the
    displayed axes when the result was kept at its (smaller) working size, so that it
    covers exactly the content's extent (napari overlays layers of any resolution)."""
    geometry = dict(selection.geometry)
    if tuple(result_plane) == tuple(plane_shape):
        return geometry
    scale, translate = list(geometry["scale"]), list(geometry["translate"])
    for axis, before, after in zip(selection.order[-2:], plane_shape, result_plane, strict=True):
        enlarged = scale[axis] * before / after
        # Pixel centres sit at translate + i·scale: the first one moves by half the
        # difference of pixel sizes, so both layers start at the same edge.
        translate[axis] += (enlarged - scale[axis]) / 2
        scale[axis] = enlarged
    return geometry | {"scale": tuple(scale), "translate": tuple(translate)}


def gray_contrast_limits(layer: Image) -> tuple[float, float] | None:
    """The user's intensity window for gray data (window/level is intent)."""
    if layer.rgb:
        return None
    low, high = (float(v) for v in layer.contrast_limits)
    return (low, high) if high > low else None


def add_output_layer(
    viewer: napari.Viewer,
    data: np.ndarray,
    name: str,
    geometry: dict[str, Any],
    record: dict[str, Any],
    rgb: bool,
    display: dict[str, Any] | None = None,
) -> Image:
    """A new Image layer on the content's world grid (``display``: limits, colormap)."""
    return viewer.add_image(
        data, name=name, rgb=rgb, metadata={RECORD_KEY: record}, **geometry, **(display or {})
    )


def gray_display(
    contrast_limits: tuple[float, float] | None, colormap: str | None
) -> dict[str, Any]:
    """A gray result shown like its content: the same window and colormap."""
    if contrast_limits is None:
        return {}
    return {"contrast_limits": contrast_limits} | ({"colormap": colormap} if colormap else {})
