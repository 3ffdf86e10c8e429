"""Device choice and the precision policy.

Convolutions dominate a style-transfer step. Where the hardware has fast bf16
(CUDA with compute capability ≥ 8, CPUs whose oneDNN reports bf16 support) they run
under bf16 autocast in channels-last layout; Gram matrices and losses stay fp32.
Elsewhere, notably AVX2-only CPUs where bf16 is emulated and slower, fp32 is used.

The environment variable ``NAPARI_NST_PRECISION`` (``fp32`` or ``bf16``) overrides
what ``precision="auto"`` picks, for a whole process and the processes it starts
(batch and Dask workers): for example ``fp32`` on a cluster that mixes CPUs with
and without bf16, so that every node computes the same numbers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


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
