"""Import PyTorch safely inside a napari (OpenGL) process.

torch imports triton when it is installed (CUDA builds of torch bring it), from
``torch._dynamo`` and from parts of torchvision. triton's native library bundles
its own LLVM; loading it into a process where Mesa's OpenGL driver (llvmpipe,
radeonsi: VMs, remote desktops, AMD and Intel GPUs on Linux) has mapped the system
``libLLVM`` segfaults. napari-nst never compiles kernels, so in such a process
triton is marked unavailable before torch looks for it. This must run before the
first import of torch-dependent code in the napari process; other processes, and
a triton that is already imported, are left alone.
"""

from __future__ import annotations

import sys


def prepare_torch() -> None:
    """Guard against the LLVM clash, then import torch's lazy parts on this thread.

    Importing ``torch._dynamo`` here (the main thread, when the widget opens) also
    keeps that multi-second import out of the first run's worker thread.
    """
    if "triton" not in sys.modules and system_llvm_is_loaded():
        sys.modules["triton"] = None  # makes `import triton` raise ImportError
    import torch._dynamo  # noqa: F401


def system_llvm_is_loaded() -> bool:
    try:
        with open("/proc/self/maps") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:  # not Linux: no Mesa/LLVM clash known
        return False


def run_threads() -> int:
    """torch threads for a run started in napari: every core but one.

    The spare core stays with napari's main thread. On a 2-core machine, a 64 px run
    with a preview at every iteration ran just as fast on one thread, and the
    median main-thread gap fell from 23 to 5 ms (p99 76 → 49 ms;
    ``benchmarks/bench_ui_stalls.py``). The count is scoped to the run's worker
    thread and recorded, so a recipe replays with it.
    """
    import torch

    from .core.devices import cpu_threads

    return min(torch.get_num_threads(), cpu_threads(spare=1))
