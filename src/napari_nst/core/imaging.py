"""Arrays in, arrays out: dtype, intensity window and channel layout at the boundary.

Inside the engine every image is an RGB float tensor in [0, 1]. This module is the
only place that decides how a user's array gets there (contrast limits for gray
data, dtype ranges for integer colour) and how the result goes back to the
user's layout: same height and width, same dtype family, alpha kept untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MIN_WORKING_SIDE = 32
"""VGG19 pools four times before conv5_1; below this the deep layers see 1–2 pixels."""


@dataclass(frozen=True)
class ImageLayout:
    """What the user's array looked like, so the result can be given back in kind."""

    kind: str  # "gray" | "rgb" | "rgba"
    shape: tuple[int, int]
    dtype: np.dtype
    alpha: np.ndarray | None = None

    @property
    def output_dtype(self) -> np.dtype:
        if self.kind != "gray" and np.issubdtype(self.dtype, np.integer):
            return self.dtype
        if self.dtype == np.float64:
            return np.dtype(np.float64)
        return np.dtype(np.float32)


def to_unit_rgb(
    array: object, contrast_limits: tuple[float, float] | None = None, role: str = "image"
) -> tuple[np.ndarray, ImageLayout]:
    """Validate ``array`` and map it to float32 RGB in [0, 1] with shape (H, W, 3).

    Gray data is windowed by ``contrast_limits`` when given (a viewer's window/level
    is the user's intent), otherwise by its own minimum and maximum. Integer colour
    uses the dtype's range; float colour is taken as [0, 1] unless it leaves that
    range, in which case it is rescaled by its own extremes.
    """
    data = np.asarray(array)
    kind = _kind(data, role)
    if data.dtype == np.bool_:
        data = data.astype(np.float32)
    colour = data if kind == "gray" else data[..., :3]
    values = colour.astype(np.float32 if colour.dtype.itemsize <= 4 else np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"the {role} contains NaN or infinite values; fix or mask them first")

    if contrast_limits is not None:
        low, high = (float(v) for v in contrast_limits)
    elif kind != "gray" and np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        low, high = float(min(info.min, 0)), float(info.max)
    else:
        low, high = float(values.min()), float(values.max())
        if kind != "gray" and low >= 0 and high <= 1:
            low, high = 0.0, 1.0
    if not high > low:
        raise ValueError(
            f"the {role} is constant (every value is {low:g}); there is no structure to stylise"
        )
    unit = np.clip((values - low) / (high - low), 0, 1).astype(np.float32)
    if kind == "gray":
        unit = np.repeat(unit[..., None], 3, axis=-1)
    alpha = np.array(data[..., 3], copy=True) if kind == "rgba" else None
    return unit, ImageLayout(kind, (data.shape[0], data.shape[1]), data.dtype, alpha)


def _kind(data: np.ndarray, role: str) -> str:
    if data.dtype.kind not in "biuf":
        raise ValueError(
            f"the {role} has data type {data.dtype}; expected real numbers (integers or floats)"
        )
    if data.ndim == 2:
        kind = "gray"
    elif data.ndim == 3 and data.shape[-1] in (3, 4):
        kind = "rgb" if data.shape[-1] == 3 else "rgba"
    else:
        raise ValueError(
            f"the {role} has shape {data.shape}; expected a 2-D gray image (H, W) or a "
            "colour image (H, W, 3) or (H, W, 4) with channels last"
        )
    if min(data.shape[:2]) < 1:
        raise ValueError(f"the {role} is empty (shape {data.shape})")
    return kind


def working_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """Scale (H, W) so the longer side is ``size``, keeping the aspect ratio."""
    height, width = shape
    scale = size / max(height, width)
    working = (max(1, round(height * scale)), max(1, round(width * scale)))
    if min(working) < MIN_WORKING_SIDE:
        raise ValueError(
            f"an image of {height}×{width} px at size {size} would be {working[0]}×"
            f"{working[1]} px; the shorter side must be at least {MIN_WORKING_SIDE} px "
            "(raise size or crop the image)"
        )
    return working


def to_tensor(unit_rgb: np.ndarray, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(H, W, 3) in [0, 1] → (1, 3, h, w) on ``device``, resized with antialiasing."""
    tensor = torch.from_numpy(np.ascontiguousarray(unit_rgb)).permute(2, 0, 1)[None]
    return resize(tensor.to(device), shape)


def resize(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    return F.interpolate(image, size=shape, mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def to_output(image: torch.Tensor, layout: ImageLayout) -> np.ndarray:
    """Working tensor → the user's layout: original H×W, dtype family, alpha kept."""
    rgb = resize(image.detach().float(), layout.shape).clamp_(0, 1)[0].permute(1, 2, 0)
    out = rgb.cpu().numpy()
    dtype = layout.output_dtype
    if np.issubdtype(dtype, np.integer):
        out = np.rint(out * np.iinfo(dtype).max).astype(dtype)
    else:
        out = out.astype(dtype, copy=False)
    if layout.alpha is not None:
        out = np.concatenate([out, layout.alpha[..., None].astype(dtype)], axis=-1)
    return out
