"""Coarse-to-fine: the sizes a run optimises at before its own.

At a coarse size an L-BFGS iteration costs a fraction of a full-size one, and the
structures that take the longest to form at full size (large strokes, the layout
of the style across the image) form there in a few iterations. Each level starts
from the previous level's result, upsampled, so the full-size optimisation only
has the fine detail left to do (Gatys et al. 2017; crowsonkb's style-transfer-
pytorch uses the same schedule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .imaging import resize, working_shape
from .options import Options

START = 128
"""Longest side of the coarsest level, in px."""
AUTO_ABOVE = 256
"""``pyramid="auto"`` turns the pyramid on for working sizes above this."""
STEP = math.sqrt(2)
"""Each level is √2 larger than the previous: twice the pixels."""
MIN_LAST_STEP = 1.2
"""A level closer than this factor to the next one is skipped (too little gain)."""


@dataclass(frozen=True)
class Level:
    """One size of the schedule: the content's and each style's working shape."""

    size: int
    shape: tuple[int, int]
    style_shapes: tuple[tuple[int, int], ...]
    iterations: int

    def describe(self) -> dict[str, object]:
        return {"size": self.size, "shape": list(self.shape), "iterations": self.iterations}


def sizes(target: int, start: int | None = None) -> list[int]:
    """Level sizes, coarse to fine, ending with ``target``: 512 → 128, 181, 256, 362, 512."""
    found, size = [], float(start or START)
    while size * MIN_LAST_STEP <= target:
        found.append(round(size))
        size *= STEP
    return [*found, target]


def wanted(options: Options) -> bool:
    if options.pyramid == "auto":
        return options.gatys_size > AUTO_ABOVE
    return options.pyramid == "on"


def schedule(
    plane_shape: tuple[int, int],
    style_plane_shapes: list[tuple[int, int]],
    options: Options,
) -> list[Level]:
    """The levels of a run; just the full size when the pyramid is off.

    Coarse levels get ``pyramid_iterations`` each (default: a fifth of
    ``iterations``, at least 10); the full size gets ``iterations``. A level too
    small for the image's aspect ratio is left out rather than failing the run.
    """
    target = options.gatys_size
    coarse = options.pyramid_iterations or max(10, options.iterations // 5)
    levels = []
    for size in sizes(target) if wanted(options) else [target]:
        final = size == target
        style_size = max(1, round(size * options.style_scale))
        try:
            level = Level(
                size=size,
                shape=working_shape(plane_shape, size, options.spacing),
                style_shapes=tuple(working_shape(s, style_size) for s in style_plane_shapes),
                iterations=options.iterations if final else coarse,
            )
        except ValueError:
            if final:
                raise
            continue
        levels.append(level)
    return levels


def upsample(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The previous level's result as the next level's start (bicubic, clamped)."""
    if tuple(image.shape[-2:]) == tuple(shape):
        return image.detach().clone()
    if image.shape[-2] > shape[0]:  # never happens in a schedule; keep it well defined
        return resize(image.detach(), shape)
    return torch.nn.functional.interpolate(
        image.detach(), size=shape, mode="bicubic", align_corners=False
    ).clamp_(0, 1)
