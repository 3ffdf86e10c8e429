"""Tiles for images larger than a device can take at once, without visible seams.

Tiles start on multiples of the network's stride, so their downsampling grids
line up with the whole image's. Neighbours overlap by :data:`OVERLAP`; in the
overlap each tile's outer :data:`MARGIN` pixels (where its own padding disturbs
the result) get weight 0, and the rest cross-fades linearly; the blended image is
the weighted sum divided by the summed weights, so no tile edge is ever seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .transformer import RECEPTIVE_MARGIN, STRIDE

MARGIN = RECEPTIVE_MARGIN
OVERLAP = 3 * RECEPTIVE_MARGIN
MIN_TILE = 2 * OVERLAP


@dataclass(frozen=True)
class Tile:
    top: int
    left: int
    bottom: int
    right: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)


def plan(shape: tuple[int, int], tile: int) -> list[Tile]:
    """Tiles of about ``tile`` px covering ``shape``, overlapping by at least OVERLAP.

    The last tile of a row or column ends at the image edge; keeping its start on
    the stride grid can make it up to STRIDE - 1 px larger than ``tile``.
    """
    tile = max(MIN_TILE, tile - tile % STRIDE)
    rows, columns = _spans(shape[0], tile), _spans(shape[1], tile)
    return [Tile(top, left, bottom, right) for top, bottom in rows for left, right in columns]


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    if length <= tile:
        return [(0, length)]
    starts = list(range(0, length - tile, tile - OVERLAP))
    last = (length - tile) - (length - tile) % STRIDE
    if last > starts[-1]:
        starts.append(last)
    return [(start, min(start + tile, length)) for start in starts[:-1]] + [(starts[-1], length)]


def weights(tile: Tile, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 blend weights: 1 inside, fading only across shared edges."""
    ys = _ramp(tile.top, tile.bottom, shape[0])
    xs = _ramp(tile.left, tile.right, shape[1])
    return np.outer(ys, xs).astype(np.float32)


def _ramp(start: int, stop: int, length: int) -> np.ndarray:
    distance = np.arange(stop - start, dtype=np.float32)
    ramp = np.ones(stop - start, np.float32)
    fade = OVERLAP - 2 * MARGIN
    if start > 0:  # a neighbour before: ignore the margin, then fade in
        ramp = np.minimum(ramp, np.clip((distance - MARGIN + 0.5) / fade, 0, 1))
    if stop < length:  # a neighbour after
        ramp = np.minimum(ramp, np.clip((distance[::-1] - MARGIN + 0.5) / fade, 0, 1))
    return ramp


def weight_sums(tiles: list[Tile], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Summed blend weights as a row and a column vector (their outer product).

    Tiles form a grid and each tile's weights are an outer product, so the sum
    over tiles is separable: no full-size weight image is needed.
    """
    rows = {(t.top, t.bottom) for t in tiles}
    columns = {(t.left, t.right) for t in tiles}
    row_sum, column_sum = np.zeros(shape[0], np.float32), np.zeros(shape[1], np.float32)
    for start, stop in rows:
        row_sum[start:stop] += _ramp(start, stop, shape[0])
    for start, stop in columns:
        column_sum[start:stop] += _ramp(start, stop, shape[1])
    return row_sum, column_sum
