"""Will a run fit? A peak-memory estimate made before any work, and what to do when not.

A Gatys step keeps every VGG activation up to the deepest layer in use for the
backward pass, and L-BFGS keeps ``2 × history`` copies of the image. Both grow with
the working pixels, so the estimate is a sum over the network's layers at the
working size, scaled by a factor measured on real runs (backward buffers, oneDNN
layout copies, the allocator's slack; ``benchmarks/bench_memory.py`` prints the
estimate next to the measured peak). Saying "this needs 40 GiB; 2048 px fits" up
front beats a swapping laptop, or the kernel's OOM killer taking napari down with
all of the user's unsaved layers.

When the device still runs out, :func:`guard` turns the error into
:class:`OutOfMemory`, after the run's tensors are gone and cached device memory is
released, so the next run starts from a clean slate.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Callable, Iterator

import torch

from . import devices
from .features import CONV_CHANNELS, LAYER_INDEX, LAYER_NAMES, canonical_layer_name
from .step import Step

ACTIVATION_FACTOR = 2.0
"""Measured peak over the analytic activation bytes (CPU, fp32, 256–512 px)."""
FIXED_BYTES = 160 * 2**20
"""Per-run overhead measured at small sizes: copied conv weights, workspaces."""
SIZE_STEP = 64
"""Suggested sizes are multiples of this (the widget's size box steps by 64 px)."""

_OUT_OF_MEMORY: tuple[type[BaseException], ...] = (torch.OutOfMemoryError, MemoryError)


class MemoryEstimateError(ValueError):
    """The run would not fit; ``fitting_size`` is the largest size that would (or None)."""

    def __init__(self, message: str, fitting_size: int | None) -> None:
        super().__init__(message)
        self.fitting_size = fitting_size


class OutOfMemory(MemoryError):
    """The device ran out of memory during a run; its memory has been released."""


def activation_floats(pixels: int, layers: tuple[str, ...], pooling: str = "max") -> float:
    """Values VGG19 keeps for backward per run, up to the deepest of ``layers``.

    Each convolution's output (shared in place with its ReLU) at its resolution,
    plus max-pooling's int64 indices, counted as two floats each.
    """
    deepest = max(LAYER_INDEX[canonical_layer_name(name)] for name in layers)
    total, scale, channels = 3.0, 1.0, 3  # the normalised input
    convs = iter(CONV_CHANNELS)
    for name in LAYER_NAMES[: deepest + 1]:
        if name.startswith("conv"):
            channels = next(convs)[1]
            total += channels * scale
        elif name.startswith("pool"):
            scale /= 4
            if pooling == "max":
                total += 2 * channels * scale
    return total * pixels


def gatys_bytes(
    shape: tuple[int, int],
    style_shape: tuple[int, int],
    channels: int,
    layers: tuple[str, ...],
    optimizer: str = "lbfgs",
    history: int = 50,
    pooling: str = "max",
) -> int:
    """Peak bytes of a Gatys run at ``shape`` (fp32; bf16 autocast only lowers it)."""
    pixels = shape[0] * shape[1]
    style_pixels = style_shape[0] * style_shape[1]
    # The style pass runs without autograd: its features are transient, but they
    # coexist with the image's activations only while targets are built.
    network = ACTIVATION_FACTOR * activation_floats(max(pixels, style_pixels), layers, pooling)
    # L-BFGS: 2·history direction pairs plus ~8 image-sized work vectors (gradient,
    # direction, best image, the closure's remembered point and gradient...).
    copies = (2 * history + 8) if optimizer == "lbfgs" else 10
    return int(4 * (network + copies * channels * pixels) + FIXED_BYTES)


def available_bytes(device: torch.device) -> int:
    """Memory a run can take now: free GPU memory plus torch's unused cache, or free RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(0.9 * (free + cached))
    return int(0.8 * devices.available_ram())


def check(
    needed_at: Callable[[int], int],
    size: int,
    device: torch.device,
    what: str,
) -> None:
    """Raise :class:`MemoryEstimateError` when ``needed_at(size)`` exceeds what is free.

    ``needed_at`` maps a working size (longest side, px) to bytes, so the message can
    name the largest size that fits.
    """
    needed, available = needed_at(size), available_bytes(device)
    if needed <= available:
        return
    fitting = largest_fitting(needed_at, size, available)
    offer = (
        f"size {fitting} px would fit (about {_gib(needed_at(fitting))})"
        if fitting
        else "even the smallest size would not fit; free some memory or use another device"
    )
    raise MemoryEstimateError(
        f"{what} needs about {_gib(needed)} on {device}, but only {_gib(available)} is "
        f"free; {offer}",
        fitting,
    )


def largest_fitting(needed_at: Callable[[int], int], size: int, available: int) -> int | None:
    """The largest multiple of ``SIZE_STEP`` below ``size`` whose estimate fits.

    A plain scan downwards: the estimate is arithmetic, and sizes too small for
    the image's aspect ratio (``ValueError``) simply do not count.
    """
    for candidate in range((size - 1) // SIZE_STEP * SIZE_STEP, 0, -SIZE_STEP):
        try:
            if needed_at(candidate) <= available:
                return candidate
        except ValueError:
            return None
    return None


def guard(steps: Iterator[Step], device: torch.device, hint: str) -> Iterator[Step]:
    """Pass ``steps`` through; turn running out of memory into :class:`OutOfMemory`.

    The traceback of the original error holds the run's frames and with them every
    tensor, so its frames are cleared and the error is not chained; only then is
    cached device memory released, and the next run finds it free.
    """
    failure = None
    try:
        yield from steps
    except _OUT_OF_MEMORY as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        failure = f"ran out of memory on {device} ({first}); {hint}"
        traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None  # the error object may outlive the run (a retry keeps it)
        del exc
    finally:
        steps.close()
        if failure is not None:  # tensors in reference cycles, too (costly, so only here)
            gc.collect()
        devices.release(device)
    if failure is not None:
        raise OutOfMemory(failure)


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"
