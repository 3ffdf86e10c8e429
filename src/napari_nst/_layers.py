"""napari layers ↔ plain arrays: the only module that knows both worlds.

Inputs are copied out of layers on the main thread, so the engine never holds a
layer or a view into its data: a run cannot modify the user's layers, and a user
editing a layer cannot corrupt a running job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

RECORD_KEY = "napari_nst"


def plane_from_layer(layer: Image, viewer: napari.Viewer | None) -> np.ndarray:
    """A copy of the 2-D plane the viewer shows (or the whole image if it is 2-D).

    Multiscale layers contribute their full-resolution level. For N-D data the
    slice follows ``viewer.dims`` like the canvas does.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    spatial = data.ndim - (1 if layer.rgb else 0)
    index: tuple[int, ...] = ()
    if spatial > 2:
        leading = spatial - 2
        if viewer is not None:
            point = layer.world_to_data(viewer.dims.point[-layer.ndim :])
            index = tuple(
                int(np.clip(round(float(p)), 0, data.shape[axis] - 1))
                for axis, p in enumerate(point[:leading])
            )
        else:
            index = (0,) * leading
    return np.array(data[index], copy=True)


def gray_contrast_limits(layer: Image) -> tuple[float, float] | None:
    """The user's intensity window for gray data (window/level is intent)."""
    if layer.rgb:
        return None
    low, high = (float(v) for v in layer.contrast_limits)
    return (low, high) if high > low else None


def output_geometry(content: Image) -> dict[str, Any]:
    """``scale``/``translate`` (and units, axis labels) of the content's displayed plane."""
    geometry: dict[str, Any] = {
        "scale": tuple(content.scale[-2:]),
        "translate": tuple(content.translate[-2:]),
    }
    for attribute in ("units", "axis_labels"):
        value = getattr(content, attribute, None)
        if value is not None:
            geometry[attribute] = tuple(value)[-2:]
    return geometry


def output_name(content: Image, style: Image) -> str:
    return f"{content.name} × {style.name}"


def add_output_layer(
    viewer: napari.Viewer,
    image: np.ndarray,
    name: str,
    geometry: dict[str, Any],
    record: dict[str, Any],
) -> Image:
    rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
    return viewer.add_image(image, name=name, rgb=rgb, metadata={RECORD_KEY: record}, **geometry)
