"""Arrays out: the engine's working tensor back in the user's layout, plane by plane.

A result has the content's height and width (and stack shape) exactly, or, with
``output_size="working"``, the size it was computed at (no resampling blur; the
napari layer then carries a scale that lays it over the content). Gray
results come back in the content's own intensity range by default, so they
overlay the source under the same contrast limits; colour results are uint8 when
the content was, float in [0, 1] otherwise; alpha is copied, never stylised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.color import rgb2yiq, yiq2rgb

from .imaging import Layout, Plane, resize


@dataclass(frozen=True)
class Rendering:
    """How results of one run are shaped: decided before the run, so consumers can
    allocate the output (a whole stack) up front."""

    layout: Layout
    luminance_only: bool
    output_range: str = "original"
    match_colour: bool = False
    """Give each result plane its content plane's per-channel mean and spread."""
    working_shape: tuple[int, int] | None = None
    """Results at this (H, W), the working size, instead of the content plane's."""

    @property
    def result_plane(self) -> tuple[int, int]:
        """(H, W) of each result plane."""
        return self.working_shape or self.layout.plane_shape

    @property
    def resampled(self) -> bool:
        """Whether results are resized from the working size to the content's."""
        return self.working_shape is None

    def resizing(self, working: tuple[int, int]) -> dict[str, dict[str, list[int]]]:
        """For run records: ``{"upsampled": {"from", "to"}}`` when results computed at
        ``working`` are enlarged to the content's size (they look soft), else nothing."""
        target = self.result_plane
        if working[0] * working[1] >= target[0] * target[1]:
            return {}
        return {"upsampled": {"from": list(working), "to": list(target)}}

    @property
    def kind(self) -> str:
        if not self.layout.colour and self.luminance_only:
            return "gray"
        return "rgba" if self.layout.kind == "rgba" else "rgb"

    @property
    def channels(self) -> int:
        """Channels the engine optimises: luminance only, or RGB."""
        return 1 if self.luminance_only else 3

    @property
    def dtype(self) -> np.dtype:
        source = self.layout.dtype
        keeps_integer = source.kind == "u" and (self.layout.colour or source == np.uint8)
        if self.kind != "gray" and self.output_range == "original" and keeps_integer:
            return source
        return np.dtype(np.float32)

    @property
    def plane_shape(self) -> tuple[int, ...]:
        channels = {"gray": (), "rgb": (3,), "rgba": (4,)}[self.kind]
        return self.result_plane + channels

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.stack_shape + self.plane_shape

    @property
    def contrast_limits(self) -> tuple[float, float] | None:
        """Display limits that match the source's window (gray results only)."""
        if self.kind != "gray":
            return None
        return self.layout.window if self.output_range == "original" else (0.0, 1.0)

    @property
    def fill(self) -> float:
        """The value of a plane not computed yet: black under the display limits."""
        return self.contrast_limits[0] if self.contrast_limits else 0

    def empty(self) -> np.ndarray:
        """A blank result for the whole input, to be filled plane by plane."""
        return np.full(self.shape, self.fill, dtype=self.dtype)

    @torch.no_grad()
    def render(self, image: torch.Tensor, plane: Plane, owned: bool = False) -> np.ndarray:
        """(1, C, h, w) working tensor → this plane's result in the user's layout.

        ``image`` is left untouched (it may be the optimiser's iterate) unless the
        caller ``owned`` it, in which case it is reused in place: a tiled 8192²
        plane is 800 MB per float copy.
        """
        size = self.result_plane
        result = resize(image.detach().float(), size)
        owned = owned or result.data_ptr() != image.data_ptr()
        result = result.clamp_(0, 1) if owned else result.clamp(0, 1)
        values = result[0].permute(1, 2, 0).cpu().numpy()
        if self.kind == "gray":
            return self._gray(values[..., 0])
        if values.shape[-1] == 1:  # luminance-only transfer on colour content
            yiq = rgb2yiq(_resized(plane.unit, size))
            yiq[..., 0] = values[..., 0]
            values = np.clip(yiq2rgb(yiq), 0, 1)
        elif self.match_colour:
            values = match_moments(values, plane.unit)
        alpha = None if plane.alpha is None else _resized(plane.alpha, size)
        return self._colour(values, alpha)

    def _gray(self, luma: np.ndarray) -> np.ndarray:
        if self.output_range == "unit":
            return luma.astype(np.float32, copy=False)
        low, high = self.layout.window
        return (low + luma * (high - low)).astype(np.float32)

    def _colour(self, rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        dtype = self.dtype
        if dtype.kind == "u":  # ``rgb`` is ours here (a fresh or owned array): scale in place
            scaled = np.multiply(rgb, np.float32(np.iinfo(dtype).max), out=rgb)
            out = np.rint(scaled, out=scaled).astype(dtype)
        else:
            out = rgb.astype(np.float32, copy=False)
        if alpha is None:
            return out
        return np.concatenate([out, self._alpha(alpha)[..., None]], axis=-1)

    def _alpha(self, alpha: np.ndarray) -> np.ndarray:
        """The content's alpha, bit for bit when the dtype allows it, else in [0, 1]."""
        if alpha.dtype == self.dtype:
            return alpha
        if alpha.dtype.kind in "iu":
            return (alpha / np.iinfo(alpha.dtype).max).astype(self.dtype)
        return alpha.astype(self.dtype)


def place(
    result: np.ndarray, index: tuple[int, ...], image: np.ndarray, fill: float
) -> np.ndarray:
    """``result`` with ``image`` as its plane ``index``: the same array, or a new one of
    the image's plane shape when a continuation changed the size (a replayed Full size),
    every plane of which that continuation computes again."""
    if result[index].shape != image.shape:
        stack = result.shape[: result.ndim - image.ndim]
        result = np.full((*stack, *image.shape), fill, dtype=result.dtype)
    result[index] = image
    return result


def _resized(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A content array (H, W) or (H, W, C) at another plane size, in its own dtype."""
    if values.shape[:2] == tuple(shape):
        return values
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    planar = tensor[None, None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)[None]
    out = resize(planar, shape)[0]
    out = (out[0] if values.ndim == 2 else out.permute(1, 2, 0)).numpy()
    if values.dtype.kind in "iu":
        info = np.iinfo(values.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(values.dtype)
    return out.astype(values.dtype, copy=False)


def match_moments(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` (H, W, 3) with ``reference``'s per-channel mean and standard deviation.

    Colour preservation by histogram matching recolours the style before the
    transfer (Gatys et al. 2016), but the optimisation still drifts the result's
    colour statistics (its spread ends up 6-18 % under the content's); this linear
    per-channel correction (Reinhard et al.'s colour transfer, in RGB) takes the
    rest of the way without touching the texture.
    """
    reference = reference[..., :3]
    if reference.shape[-1] != values.shape[-1]:  # gray content optimised as RGB
        reference = np.repeat(reference[..., :1], values.shape[-1], axis=-1)
    mean, std = values.mean(axis=(0, 1)), values.std(axis=(0, 1))
    target_mean, target_std = reference.mean(axis=(0, 1)), reference.std(axis=(0, 1))
    scaled = (values - mean) * (target_std / np.maximum(std, 1e-6)) + target_mean
    return np.clip(scaled, 0, 1).astype(np.float32, copy=False)
