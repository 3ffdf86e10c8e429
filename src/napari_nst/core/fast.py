"""The fast run: a trained feed-forward network over planes or tiles.

**The run.** Fast (feed-forward) style transfer: one network pass per plane, or per
tile.

The same generator contract as the Gatys engine: ``steps()`` yields
:class:`Step`s (one per tile, or per batch of planes), ``send(STOP)`` ends the run
keeping every finished plane. Fast runs have no losses to report.

Big planes are tiled with the whole image's instance-norm statistics frozen
(measured on the image itself, or on a copy downscaled to :data:`STATS_SIDE`), so
tiles are normalised alike and join without seams; peak memory is bounded by
the tile size, whatever the image size.

**Tiles.** Tiles for images larger than a device can take at once, without visible
seams.

Tiles start on multiples of the network's stride, so their downsampling grids
line up with the whole image's. Neighbours overlap by :data:`OVERLAP`; in the
overlap each tile's outer :data:`MARGIN` pixels (where its own padding disturbs
the result) fade to 0, and the rest cross-fades linearly; the joined image is the
sum of the faded tiles divided by the summed fades, so no tile edge is ever seen.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import devices
from .files import cached_by_file
from .images import Plane, Rendering, inspect, read_plane, resize, working_shape
from .networks import (
    MARGIN,
    MIN_TILE,
    OVERLAP,
    STRIDE,
    TransformerNet,
    pad_to_stride,
    state_problems,
)
from .options import Options
from .step import STOP, LocalRun, Step
from .vgg import UnsafeOrCorruptFile, file_sha256, read_state_dict

STATS_SIDE = 1024
"""Longest side of the copy a tiled plane's normalisation statistics come from."""

BYTES_PER_PIXEL = 1200
"""Peak activation memory of one inference, measured: ~1.1 kB per input pixel (fp32)."""

_LEGACY_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # YIQ's Y, as skimage.color.rgb2yiq


SAMPLE_MODEL = "starry_night.pth"
"""The fast model installed with napari-nst (The Starry Night; ``docs/train_sample_model.py``
is its recipe), used when no checkpoint is given."""


def sample_model() -> Path:
    from importlib import resources

    return Path(str(resources.files("napari_nst") / "samples" / SAMPLE_MODEL))


class CheckpointError(ValueError):
    """A fast-style model file that cannot be used, with what was found in it."""


def load_checkpoint(path: str | Path) -> TransformerNet:
    """A TransformerNet from a pytorch/examples state dict (``.pth``) or ``.safetensors``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(
            f"{path.name}: ONNX models are not supported yet; use the PyTorch .pth (state "
            "dict) or .safetensors version of the model"
        )
    return read_checkpoint(path)


@cached_by_file(maxsize=4)
def read_checkpoint(path: Path) -> TransformerNet:
    """The model in ``path``, read once per process (again when the file changes)."""
    try:
        state, _ = read_state_dict(path)
    except UnsafeOrCorruptFile as exc:
        raise CheckpointError(str(exc)) from None
    net = TransformerNet()
    net.load_state_dict(_matching_state(state, net, path))
    return net.eval().requires_grad_(False)


def _matching_state(state: dict[str, Any], net: TransformerNet, path: Path) -> dict[str, Any]:
    """The file's tensors under our keys; a clear error naming every mismatch."""
    cleaned = {
        key.removeprefix("module."): value
        for key, value in state.items()
        if not _LEGACY_KEY.search(key)  # InstanceNorm running stats of old torch versions
    }
    problems = state_problems(net, cleaned)
    if problems:
        raise CheckpointError(
            f"{path} is not a fast-style TransformerNet checkpoint (pytorch/examples "
            f"fast_neural_style layout): {'; '.join(problems)}"
        )
    return {key: value.float() for key, value in cleaned.items()}


class FastTransfer(LocalRun):
    """A validated fast run; the checkpoint is read when the run starts."""

    # One network pass: nothing to steer or go on with (see step.Run).
    pausable = True
    steerable = False
    continuable = False
    redecodable = False

    def __init__(self, content: object, options: Options) -> None:
        self.checkpoint = Path(options.checkpoint or sample_model()).expanduser()
        if not self.checkpoint.is_file():
            raise CheckpointError(f"checkpoint not found: {options.checkpoint}")
        self.options = options
        self.layout = inspect(
            content, "content image", options.contrast_limits, stack=options.stack == "all"
        )
        self._content = content
        luminance = options.luminance_only
        if luminance is None:
            luminance = not self.layout.colour
        # Native resolution unless a size is asked for (brush strokes scale with it).
        self.shape = working_shape(
            self.layout.plane_shape, options.size or self.full_size, options.spacing
        )
        working = self.shape if options.output_size == "working" else None
        self.rendering = Rendering(
            self.layout, luminance, options.output_range, working_shape=working
        )
        self.device = devices.resolve_device(options.device)
        self.precision = "fp32"  # 0–255 outputs need more mantissa than bf16 has
        self.tile = devices.feed_forward_tile(
            self.shape, self.device, BYTES_PER_PIXEL, options.tile, MIN_TILE, self._bytes_at
        )
        self.non_finite = 0
        self.last_iteration = 0
        self._stop = threading.Event()
        self._sha256: str | None = None

    def info(self) -> dict[str, Any]:
        checkpoint = str(self.checkpoint)
        if self._sha256 is None:
            self._sha256 = file_sha256(checkpoint)
        return {
            "device": str(self.device),
            "precision": self.precision,
            "working_size": list(self.shape),
            "luminance_only": self.rendering.luminance_only,
            "tile": self.tile,
            "result": {"shape": list(self.rendering.shape), "dtype": str(self.rendering.dtype)},
            **self.rendering.resizing(self.shape),
            "non_finite_pixels": self.non_finite,
            "checkpoint": {"path": checkpoint, "sha256": self._sha256},
        }

    def _bytes_at(self, size: int) -> int:
        height, width = working_shape(self.layout.plane_shape, size, self.options.spacing)
        return height * width * BYTES_PER_PIXEL + devices.FIXED_BYTES

    def steps(self) -> Iterator[Step]:
        """Stylise plane by plane (or tile by tile); ``send(STOP)`` keeps finished planes."""
        hint = "leave tile on auto (tiles bound the memory), or use a smaller size"
        yield from devices.guard(self._run(), self.device, hint)

    def _run(self) -> Iterator[Step]:
        net = load_checkpoint(self.checkpoint)
        devices.configure(self.device)
        net = net.to(self.device, memory_format=torch.channels_last)
        tiles = plan(self.shape, self.tile) if self.tile else []
        batch = 1 if tiles else self._batch_size()
        indices = self.layout.indices
        groups = [range(i, min(i + batch, self.planes)) for i in range(0, self.planes, batch)]
        clock = _Clock(self.planes * len(tiles) if tiles else len(groups), self.planes)
        for group in groups:
            if self._stop.is_set():
                yield clock.step(indices[group[0]], group[0], done=True, cancelled=True)
                return
            planes = [read_plane(self._content, indices[n], self.layout) for n in group]
            self.non_finite += sum(plane.non_finite for plane in planes)
            if tiles:
                joined = yield from self._tiled(net, planes[0], tiles, clock, group[0])
                if joined is None:  # stopped
                    return
                images = [joined]
            else:
                images = self._whole(net, planes)
                clock.done += 1
            for number, plane, image in zip(group, planes, images, strict=True):
                last = number == self.planes - 1
                final = self.rendering.render(self._channels(image), plane, owned=True)
                reply = yield clock.step(
                    indices[number], number, image=final, plane_done=True, done=last
                )
                if reply == STOP and not last:  # this plane is finished; the rest are not
                    yield clock.step(
                        indices[number], number, done=True, cancelled=True, plane_done=True
                    )
                    return

    def _input(self, plane: Plane) -> torch.Tensor:
        """(1, 3, h, w) in [0, 1] at the working size (the plane's memory where possible)."""
        unit = plane.unit
        tensor = torch.from_numpy(unit).permute(2, 0, 1)[None]
        if tensor.shape[1] == 1:
            tensor = tensor.expand(-1, 3, -1, -1)
        return resize(tensor, self.shape)

    @torch.no_grad()
    def _whole(self, net: TransformerNet, planes: list[Plane]) -> list[torch.Tensor]:
        batch = torch.cat([self._input(plane) for plane in planes]).to(self.device)
        return list(_infer(net, batch).cpu().split(1))

    def _tiled(
        self,
        net: TransformerNet,
        plane: Plane,
        tiles: list[Tile],
        clock: _Clock,
        number: int,
    ) -> Iterator[Step]:
        """Run tile by tile, yielding progress; returns the joined plane (None if stopped)."""
        image = self._input(plane)
        index = self.layout.indices[number]
        accumulated = torch.zeros((1, 3, *self.shape))
        side = min(STATS_SIDE, max(self.shape))
        reference = resize(image, working_shape(self.shape, side))
        reference = pad_to_stride(reference.to(self.device))[0] * 255
        with torch.no_grad(), net.frozen_statistics(reference):
            for tile in tiles:
                if self._stop.is_set():
                    yield clock.step(index, number, done=True, cancelled=True)
                    return None
                rows, columns = tile.slices
                out = _infer(net, image[..., rows, columns].to(self.device)).cpu()
                fade = torch.from_numpy(tile_fade(tile, self.shape))[None, None]
                accumulated[..., rows, columns] += out.mul_(fade)
                clock.done += 1
                if (yield clock.step(index, number)) == STOP:
                    yield clock.step(index, number, done=True, cancelled=True)
                    return None
        del image, reference
        row_sum, column_sum = fade_sums(tiles, self.shape)
        accumulated.div_(torch.from_numpy(row_sum)[:, None]).div_(torch.from_numpy(column_sum))
        return accumulated

    def _channels(self, image: torch.Tensor) -> torch.Tensor:
        if self.rendering.luminance_only:
            return (image * _LUMA.view(1, 3, 1, 1).to(image)).sum(1, keepdim=True)
        return image

    def _batch_size(self) -> int:
        budget = devices.memory_budget(self.device) // BYTES_PER_PIXEL
        return int(max(1, min(16, budget // (self.shape[0] * self.shape[1]))))


class _Clock:
    """Run-wide progress (tiles or batches done) that every step reports."""

    def __init__(self, total: int, planes: int) -> None:
        self.start, self.done, self.total, self.planes = time.perf_counter(), 0, total, planes

    def step(self, index: tuple[int, ...], number: int, **fields: Any) -> Step:
        return Step(
            iteration=self.done,
            total=self.total,
            losses={},
            elapsed=time.perf_counter() - self.start,
            index=index,
            plane=number,
            planes=self.planes,
            **fields,
        )


def _infer(net: TransformerNet, batch: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB → [0, 1] RGB through a network trained on 0–255, size preserved."""
    padded, (height, width) = pad_to_stride(batch.contiguous(memory_format=torch.channels_last))
    out = net(padded * 255)[..., :height, :width]
    return out.clamp_(0, 255).div_(255).contiguous()


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


def tile_fade(tile: Tile, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 cross-fade of a tile: 1 inside, fading only across shared edges."""
    ys = _ramp(tile.top, tile.bottom, shape[0])
    xs = _ramp(tile.left, tile.right, shape[1])
    return np.outer(ys, xs).astype(np.float32)


def _ramp(start: int, stop: int, length: int) -> np.ndarray:
    distance = np.arange(stop - start, dtype=np.float32)
    ramp = np.ones(stop - start, np.float32)
    width = OVERLAP - 2 * MARGIN
    if start > 0:  # a neighbour before: ignore the margin, then fade in
        ramp = np.minimum(ramp, np.clip((distance - MARGIN + 0.5) / width, 0, 1))
    if stop < length:  # a neighbour after
        ramp = np.minimum(ramp, np.clip((distance[::-1] - MARGIN + 0.5) / width, 0, 1))
    return ramp


def fade_sums(tiles: list[Tile], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Summed tile fades as a row and a column vector (their outer product).

    Tiles form a grid and each tile's fade is an outer product, so the sum
    over tiles is separable: no full-size fade image is needed.
    """
    rows = {(t.top, t.bottom) for t in tiles}
    columns = {(t.left, t.right) for t in tiles}
    row_sum, column_sum = np.zeros(shape[0], np.float32), np.zeros(shape[1], np.float32)
    for start, stop in rows:
        row_sum[start:stop] += _ramp(start, stop, shape[0])
    for start, stop in columns:
        column_sum[start:stop] += _ramp(start, stop, shape[1])
    return row_sum, column_sum
