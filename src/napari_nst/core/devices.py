"""Where a run executes: device, precision, threads, and whether it fits in memory.

**Device and precision.** Device choice and the precision policy.

Convolutions dominate a style-transfer step. Where the hardware has fast bf16
(CUDA with compute capability ≥ 8, CPUs whose oneDNN reports bf16 support) they run
under bf16 autocast in channels-last layout; Gram matrices and losses stay fp32.
Elsewhere, notably AVX2-only CPUs where bf16 is emulated and slower, fp32 is used.

The environment variable ``NAPARI_NST_PRECISION`` (``fp32`` or ``bf16``) overrides
what ``precision="auto"`` picks, for a whole process and the processes it starts
(batch and Dask workers): for example ``fp32`` on a cluster that mixes CPUs with
and without bf16, so that every node computes the same numbers.

**Memory.** Will a run fit? A peak-memory estimate made before any work, and what to do
when not.

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

import contextlib
import copy
import gc
import os
import traceback
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .step import Step
from .vgg import CONV_CHANNELS, LAYER_INDEX, LAYER_NAMES, canonical_layer_name


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU; explicit names are checked."""
    if not isinstance(spec, str):
        raise DeviceError(f"device must be a string like 'auto', 'cpu' or 'cuda:0'; got {spec!r}")
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(
            f"unknown device {spec!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is available; use device='cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"{spec} was requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type == "mps":
        if not _mps_available():
            raise DeviceError("MPS was requested but is not available; use device='cpu'")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {spec!r}; use 'auto', 'cpu', 'cuda' or 'mps'")
    return device


DEFAULT_SIZE = {"cpu": 384, "other": 512}
"""Working size of a Gatys run when none is given: a CPU takes minutes at 384 px and
about twice as long at 512, a GPU seconds either way."""


def default_size(device: torch.device) -> int:
    return DEFAULT_SIZE["cpu" if device.type == "cpu" else "other"]


def available_devices() -> list[str]:
    """Choices to offer in a UI: always ``auto`` and ``cpu``, plus what exists."""
    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        choices.append("mps")
    return choices


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def bf16_is_fast(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        with contextlib.suppress(AttributeError, RuntimeError):
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


AUTO_PRECISION_VARIABLE = "NAPARI_NST_PRECISION"


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` where it is fast on this device, else ``fp32`` (unless the
    ``NAPARI_NST_PRECISION`` environment variable says which)."""
    if requested == "auto":
        forced = os.environ.get(AUTO_PRECISION_VARIABLE, "").strip().lower()
        if forced not in ("", "auto", "fp32", "bf16"):
            raise DeviceError(
                f"{AUTO_PRECISION_VARIABLE}={forced!r} is not a precision; use fp32 or bf16"
            )
        if forced in ("fp32", "bf16"):
            requested = forced
        else:
            return "bf16" if bf16_is_fast(device) else "fp32"
    if requested == "bf16" and device.type == "mps":
        raise DeviceError("bf16 autocast is not supported on MPS; use precision='fp32'")
    return requested


def dtype_of(precision: str) -> torch.dtype:
    """The dtype a network runs in at ``precision`` (a resolved one: fp32 or bf16)."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def inference_copy(network: nn.Module, device: torch.device, precision: str) -> nn.Module:
    """A copy of ``network`` for inference only, on ``device`` in ``precision``'s dtype
    and channels-last: feed it inputs of that dtype. For a feed-forward pass, weights
    cast once run about twice as fast as autocast, which casts every activation again
    (a VGG19 encoder and decoder at 1024 px: 0.58 s against 1.26 s on a 2-core Xeon
    with AMX)."""
    network = copy.deepcopy(network).eval().requires_grad_(False)
    return network.to(device, dtype_of(precision), memory_format=torch.channels_last)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def configure(device: torch.device) -> None:
    """Per-process backend switches that only ever help this workload."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def cpu_threads(*, share: int = 1, spare: int = 0) -> int:
    """The one thread-count policy: torch threads for each of ``share`` runs side by
    side on this machine's cores, with ``spare`` cores left for other work (napari's
    main thread). At least one."""
    return max(1, ((os.cpu_count() or 1) - spare) // share)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` torch threads (``None``: as they are), restored after.

    CPU results depend on the count (reductions are split across threads), so a
    replay that must match its record bit for bit runs with the record's. The
    setting is process-wide: other torch work in the process sees it meanwhile.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if threads:
            torch.set_num_threads(before)


def release(device: torch.device) -> None:
    """Give cached accelerator memory back once a run's tensors are gone."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        with contextlib.suppress(AttributeError, RuntimeError):
            torch.mps.empty_cache()


def memory_budget(device: torch.device) -> int:
    """Bytes one inference may use: half the free GPU memory, a quarter of free RAM.

    The CPU share is capped at 1.5 GiB: with the whole-plane input and result
    buffers an 8192² image then peaks under 4 GB, and a laptop is not pushed into
    swap.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return int(min(1.5 * 2**30, 0.25 * available_ram()))


def available_ram() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


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
    return int(0.8 * available_ram())


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


def feed_forward_tile(
    shape: tuple[int, int],
    device: torch.device,
    bytes_per_pixel: int,
    requested: int | None,
    minimum: int,
    bytes_at: Callable[[int], int],
) -> int | None:
    """The tile side of a feed-forward run (fast, WCT, AdaIN) over planes of ``shape``:
    ``requested`` when given (0: never tile), else None (whole planes) when a plane fits
    the memory budget at ``bytes_per_pixel``, else the largest tile that does, at least
    ``minimum``. An untiled run is checked against the free memory (``bytes_at`` maps a
    working size to bytes, so the message can name one that fits)."""
    if requested is None:
        pixels_budget = memory_budget(device) // bytes_per_pixel
        if shape[0] * shape[1] > pixels_budget:
            return max(minimum, int(pixels_budget**0.5))
    elif requested:
        return requested
    height, width = shape
    check(bytes_at, max(shape), device, f"an untiled {height}×{width} run")
    return None


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
        release(device)
    if failure is not None:
        raise OutOfMemory(failure)


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"
