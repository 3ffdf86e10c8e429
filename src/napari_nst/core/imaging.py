"""Arrays in: dtype, intensity window, channel layout and stacks at the boundary.

Inside the engine a plane is a float tensor in [0, 1] with one channel (gray or
luminance) or three (RGB). This module decides how a user's array gets there: the
layout is inspected once for the whole input (a stack shares one intensity
window, so slices stay comparable), then planes are converted one at a time, so
a large volume never exists as float32 all at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import rgb2yiq

MIN_WORKING_SIDE = 32
"""VGG19 pools four times before conv5_1; below this the deep layers see 1–2 pixels."""

MIN_IMAGE_SIDE = 16
"""Smaller images carry too little structure to stylise; upscaling 2×2 px to 512 is noise."""

MAX_STACK_AXES = 2
"""Leading axes a stack may have: (z, y, x) and (t, z, y, x), with channels last for colour."""


@dataclass(frozen=True)
class Layout:
    """What the user's array looks like, decided once for every plane of it."""

    kind: str  # "gray" | "rgb" | "rgba"
    stack_shape: tuple[int, ...]  # leading axes; () for a single plane
    plane_shape: tuple[int, int]
    dtype: np.dtype
    window: tuple[float, float]  # input values mapped to 0 and 1

    @property
    def colour(self) -> bool:
        return self.kind != "gray"

    @property
    def indices(self) -> list[tuple[int, ...]]:
        """Every plane's position in the leading axes, in C order."""
        return list(np.ndindex(*self.stack_shape))


@dataclass(frozen=True)
class Plane:
    """One 2-D plane in unit range: (H, W, 1) gray or (H, W, 3) RGB; alpha untouched."""

    unit: np.ndarray
    alpha: np.ndarray | None
    non_finite: int  # pixels that were NaN/±inf and now hold the window's low end

    @property
    def luminance(self) -> np.ndarray:
        return luminance(self.unit)


def luminance(unit: np.ndarray) -> np.ndarray:
    """(H, W) luma of (H, W, C) in [0, 1]: YIQ's Y for colour (Gatys et al. 2016), gray as is."""
    if unit.shape[-1] == 1:
        return unit[..., 0]
    return rgb2yiq(unit)[..., 0].astype(np.float32)


def inspect(
    array: object,
    role: str = "image",
    contrast_limits: tuple[float, float] | None = None,
    stack: bool = False,
) -> Layout:
    """Validate ``array`` and decide its layout and intensity window.

    Gray data is windowed by ``contrast_limits`` when given (a viewer's window/level
    is the user's intent), otherwise by its finite minimum and maximum over every
    plane. Integer colour uses the dtype's range; float colour is taken as [0, 1]
    unless it leaves that range. Planes with no finite value, constant images and
    empty axes are refused here, before any work starts.
    """
    data = array if hasattr(array, "shape") and hasattr(array, "dtype") else np.asarray(array)
    dtype = np.dtype(data.dtype)
    if dtype.kind not in "biuf":
        raise ValueError(f"the {role} has data type {dtype}; expected real numbers")
    shape = tuple(int(n) for n in data.shape)
    kind = _kind(shape, role, stack)
    if 0 in shape:
        raise ValueError(f"the {role} is empty (shape {shape})")
    spatial = len(shape) - (1 if kind != "gray" else 0)
    stack_shape, plane_shape = shape[: spatial - 2], (shape[spatial - 2], shape[spatial - 1])
    if min(plane_shape) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"the {role} is {plane_shape[0]}×{plane_shape[1]} px; stylising needs at least "
            f"{MIN_IMAGE_SIDE} px on each side"
        )

    low, high = _finite_range(data, stack_shape, kind, role)
    if not high > low:  # whatever the window, one value everywhere has no structure
        raise ValueError(
            f"the {role} is constant (every value is {low:g}); there is no structure to stylise"
        )
    if contrast_limits is not None:
        low, high = (float(v) for v in contrast_limits)
    elif kind != "gray" and dtype.kind == "b":
        low, high = 0.0, 1.0
    elif kind != "gray" and dtype.kind in "iu":
        low, high = float(min(np.iinfo(dtype).min, 0)), float(np.iinfo(dtype).max)
    elif kind != "gray" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    if not high > low:
        raise ValueError(
            f"the {role} is constant (every value is {low:g}); there is no structure to stylise"
        )
    return Layout(kind, stack_shape, plane_shape, dtype, (low, high))


def _kind(shape: tuple[int, ...], role: str, stack: bool) -> str:
    colour = len(shape) >= 3 and shape[-1] in (3, 4)
    kind = ("rgb" if shape[-1] == 3 else "rgba") if colour else "gray"
    spatial = len(shape) - (1 if colour else 0)
    if spatial < 2 or len(shape) < 2 or (len(shape) == 3 and shape[-1] == 2):
        raise ValueError(
            f"the {role} has shape {shape}; expected a 2-D gray image (H, W) or a colour "
            "image (H, W, 3) or (H, W, 4) with channels last"
        )
    leading = spatial - 2
    misplaced = [axis for axis, n in enumerate(shape[:-2]) if n in (3, 4)]
    hint = (
        f"; if axis {misplaced[0]} (size {shape[misplaced[0]]}) holds colour channels, "
        f"move it last (numpy.moveaxis(image, {misplaced[0]}, -1))"
        if misplaced and not colour
        else ""
    )
    if leading > MAX_STACK_AXES:
        raise ValueError(
            f"the {role} has shape {shape}: {leading} stack axes, but at most "
            f"{MAX_STACK_AXES} are supported ((t, z, y, x), channels last for colour){hint}"
        )
    if leading and not stack:
        raise ValueError(
            f"the {role} has shape {shape}, a stack of {np.prod(shape[:leading])} planes; "
            f"pass one 2-D plane, or stack='all' (CLI --stack all) to stylise every plane{hint}"
        )
    return kind


def _finite_range(
    data: object, stack_shape: tuple[int, ...], kind: str, role: str
) -> tuple[float, float]:
    """Finite minimum and maximum over all planes; a plane with no finite value is an error."""
    low, high = np.inf, -np.inf
    for index in np.ndindex(*stack_shape):
        values = _colour_values(_materialise(data[index]), kind)
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            if not finite.any():
                where = f"plane {index} of the {role}" if index else f"the {role}"
                raise ValueError(f"{where} has no finite values (all NaN or infinite)")
            if not finite.all():
                values = values[finite]
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    return low, high


def _materialise(plane: object) -> np.ndarray:
    """A plane of a numpy, zarr or dask array as numpy.

    Dask computes in this (worker) thread: its default scheduler would start a
    thread pool per calling thread that outlives the run.
    """
    compute = getattr(plane, "compute", None)
    if callable(compute):
        plane = compute(scheduler="synchronous")
    return np.asarray(plane)


def _colour_values(plane: np.ndarray, kind: str) -> np.ndarray:
    return plane if kind == "gray" else plane[..., :3]


def read_plane(array: object, index: tuple[int, ...], layout: Layout) -> Plane:
    """Plane ``index`` of ``array`` in unit range; non-finite pixels take the window's low end."""
    data = _materialise(array[index])  # type: ignore[index]
    values = _colour_values(data, layout.kind)
    values = values.astype(np.float32 if values.dtype.itemsize <= 4 else np.float64)
    non_finite = 0
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        non_finite = int(bad.any(axis=-1).sum() if layout.colour else bad.sum())
        if non_finite:
            values[bad] = layout.window[0]
    low, high = layout.window
    values -= low  # in place: one float copy of a plane, however large
    values /= high - low
    unit = np.clip(values, 0, 1, out=values).astype(np.float32, copy=False)
    unit = unit if layout.colour else unit[..., None]
    alpha = np.array(data[..., 3], copy=True) if layout.kind == "rgba" else None
    return Plane(unit, alpha, non_finite)


def luminance_statistics(array: object, layout: Layout) -> tuple[float, float]:
    """Mean and standard deviation of the luma over every plane (for style matching)."""
    total = total_sq = 0.0
    count = 0
    for index in layout.indices:
        luma = read_plane(array, index, layout).luminance.astype(np.float64)
        total, total_sq, count = total + luma.sum(), total_sq + (luma**2).sum(), count + luma.size
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean**2, 0.0)))


def match_luminance(luma: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Shift and scale ``luma`` to the given statistics (Gatys et al. 2016, eq. 1)."""
    spread = float(luma.std())
    scaled = (luma - luma.mean()) * (std / spread if spread > 0 else 1.0) + mean
    return np.clip(scaled, 0, 1).astype(np.float32)


def working_shape(
    shape: tuple[int, int], size: int, spacing: tuple[float, float] | None = None
) -> tuple[int, int]:
    """(H, W) at ``size`` px on the longer side, with square pixels in physical units.

    With anisotropic ``spacing`` (y, x), e.g. a z–x plane of a 3 × 1 × 1 mm volume,
    the working image is stretched so the network sees true proportions; the result
    is resized back to the original grid.
    """
    height, width = shape
    sy, sx = spacing if spacing is not None else (1.0, 1.0)
    extent_y, extent_x = height * sy, width * sx
    scale = size / max(extent_y, extent_x)
    working = (max(1, round(extent_y * scale)), max(1, round(extent_x * scale)))
    if min(working) < MIN_WORKING_SIDE:
        raise ValueError(
            f"an image of {height}×{width} px at size {size} would be {working[0]}×"
            f"{working[1]} px; the shorter side must be at least {MIN_WORKING_SIDE} px "
            "(raise size or crop the image)"
        )
    return working


def to_tensor(unit: np.ndarray, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(H, W, C) in [0, 1] → (1, C, h, w) on ``device``, resized with antialiasing."""
    if unit.ndim == 2:
        unit = unit[..., None]
    tensor = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32)).permute(2, 0, 1)[None]
    return resize(tensor.to(device), shape)


def resize(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    return F.interpolate(image, size=shape, mode="bilinear", antialias=True, align_corners=False)
