"""Seconds per Gatys iteration and peak memory: napari-nst vs neural-style-pt.

A Gatys run is hundreds of identical L-BFGS iterations (one VGG19 forward +
backward each), so seconds per iteration is the cost a user feels; setup (reading
~550 MB of weights, computing targets) is paid once and excluded. Both engines get
the same work: one random VGG19 file in torchvision's ``features.N/classifier.N``
layout, which neural-style-pt also loads (named "vgg19-..." because it picks the
architecture from the file name); the same PNGs and longest side; content relu4_2,
style relu1_1..relu5_1; L-BFGS (history 50) from the content. neural-style-pt
takes fixed unit steps; ours has a strong-Wolfe line search, which after the first
iteration (part of the warm-up) accepts the unit step with a single evaluation, so
both do one forward + backward per timed iteration. The script prints our
evaluations per timed iteration to show it.

Timing: ours yields a ``Step`` per iteration stamped with ``elapsed``.
neural-style-pt runs all iterations inside one ``LBFGS.step``, so its optimiser is
swapped for a subclass that stamps the end of each loss evaluation. In both,
consecutive stamps are one evaluation + one update apart (synchronised on CUDA);
the median after warm-up is robust to a core being stolen briefly. On CUDA
neural-style-pt gets ``-backend cudnn -cudnn_autotune`` (its default disables cuDNN).

Memory: every engine and size runs in a fresh subprocess. "peak" is the process
peak RSS (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA) over the whole run,
weight loading included; "loop" is that high-water mark reset after warm-up (the
peak while iterating); "base" is the level before the engine starts (on CPU mostly
the ~0.5 GB a CUDA build of torch costs to import), so loop - base is what the
engine holds while iterating.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CONTENT_LAYERS = ["relu4_2"]
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
HISTORY = 50
INSTALL_HINT = "pip install --no-deps neural-style==0.5.7"


class Meter:
    """Peak memory of this process, with a reset after warm-up."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.base = self.peak()  # after importing torch, before any engine work
        self.setup_peak = 0.0

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def peak(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        with contextlib.suppress(OSError, StopIteration):  # Linux: resettable high-water mark
            status = Path("/proc/self/status").read_text().splitlines()
            return int(next(x for x in status if x.startswith("VmHWM:")).split()[1]) / 1024
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
        return maxrss / (2**20 if sys.platform == "darwin" else 1024)

    def warmed_up(self) -> None:
        """Remember the peak so far (setup + warm-up), then restart the high-water mark."""
        self.setup_peak = self.peak()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")

    def result(self) -> dict[str, float]:
        loop = self.peak()
        return {"base_mb": self.base, "peak_mb": max(self.setup_peak, loop), "loop_mb": loop}


def timing(stamps: list[float], warmup: int) -> dict[str, float]:
    """Median and mean of the iteration times after warm-up (stamp k ends iteration k+1)."""
    times = np.diff(stamps[warmup - 1 :])
    return {"median_s": float(np.median(times)), "mean_s": float(times.mean())}


def run_ours(a: argparse.Namespace, meter: Meter) -> dict[str, object]:
    from napari_nst.core import prepare

    content, style = (np.asarray(Image.open(p).convert("RGB")) for p in (a.content, a.style))
    run = prepare(
        content,
        style,
        vgg=a.weights,
        size=a.size,
        iterations=a.warmup + a.iterations,
        device=a.device,
        precision=a.precision,
        preview_every=10**6,
        optimizer="lbfgs",
        lbfgs_history=HISTORY,
        init="content",
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
    )
    stamps, evaluations = [], {}
    for step in run.steps():
        stamps.append(step.elapsed)
        evaluations[step.iteration] = step.evaluations
        if step.iteration == a.warmup:
            meter.warmed_up()
    per_iteration = (evaluations[a.warmup + a.iterations] - evaluations[a.warmup]) / a.iterations
    return {
        "evaluations_per_iteration": per_iteration,
        "precision": run.precision,
        "px": "x".join(map(str, run.shape)),
        **timing(stamps, a.warmup),
        **meter.result(),
    }


def run_theirs(a: argparse.Namespace, meter: Meter) -> dict[str, object]:
    device, n = torch.device(a.device), a.warmup + a.iterations
    gpu = "c" if device.type == "cpu" else str(device.index or 0)
    # One extra evaluation, not timed: neural-style-pt saves its result inside the last one.
    args = {
        "content_image": a.content,
        "style_image": a.style,
        "model_file": a.weights,
        "image_size": a.size,
        "gpu": gpu,
        "num_iterations": n + 1,
        "init": "image",
        "optimizer": "lbfgs",
        "lbfgs_num_correction": HISTORY,
        "content_layers": ",".join(CONTENT_LAYERS),
        "style_layers": ",".join(STYLE_LAYERS),
        "print_iter": 0,
        "save_iter": 0,
        "output_image": Path(a.workdir) / f"theirs-{a.size}.png",
    }
    sys.argv = ["neural-style", *(x for k, v in args.items() for x in (f"-{k}", str(v)))]
    if device.type == "cuda":
        sys.argv += ["-backend", "cudnn", "-cudnn_autotune"]
    from neural_style import neural_style as ns  # parses sys.argv on import

    stamps: list[float] = []

    class TimedLBFGS(torch.optim.LBFGS):
        def step(self, closure):  # type: ignore[override]
            def timed():
                loss = closure()
                meter.sync()
                stamps.append(time.perf_counter())
                if len(stamps) == a.warmup:
                    meter.warmed_up()
                return loss

            return super().step(timed)

    ns.optim = types.SimpleNamespace(LBFGS=TimedLBFGS, Adam=torch.optim.Adam)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        ns.main()
    if len(stamps) != n + 1:
        raise RuntimeError(f"expected {n + 1} loss evaluations, got {len(stamps)}")
    width, height = Image.open(a.content).size
    px = "x".join(str(int(a.size / max(width, height) * x)) for x in (height, width))
    return {"precision": "fp32", "px": px, **timing(stamps[:n], a.warmup), **meter.result()}


def child(spec: str) -> None:
    """Measure one engine at one size (``spec``: the parent's options as JSON)."""
    a = argparse.Namespace(**json.loads(spec))
    result = (run_ours if a.engine == "ours" else run_theirs)(a, Meter(torch.device(a.device)))
    print("RESULT " + json.dumps(result), flush=True)


def make_inputs(a: argparse.Namespace, workdir: Path) -> None:
    """Write the shared weights file and (unless given) the content/style PNGs."""
    import torchvision

    torch.manual_seed(0)
    a.weights = str(workdir / "vgg19-random.pth")
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), a.weights)
    if a.content is None or a.style is None:
        import skimage.data

        defaults = {"content": skimage.data.astronaut, "style": skimage.data.coffee}
        for role, image in defaults.items():
            if getattr(a, role) is None:
                setattr(a, role, str(workdir / f"{role}.png"))
                Image.fromarray(image()).save(getattr(a, role))


def spawn(a: argparse.Namespace, engine: str, size: int) -> dict[str, object] | str:
    """Run one measurement in a fresh interpreter; a result dict, or why it failed."""
    spec = json.dumps({**vars(a), "engine": engine, "size": size})
    cmd = [sys.executable, __file__, "--child", spec]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return f"failed (exit {proc.returncode}): {tail}"


def header(a: argparse.Namespace) -> None:
    device = torch.device(a.device)
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(x for x in lines if x.startswith("model name")).split(":", 1)[1].strip()
    print(
        f"torch {torch.__version__}, device {device}, "
        f"{torch.get_num_threads()} CPU threads, CPU {cpu}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    if device.type == "cuda":
        print(f"GPU {torch.cuda.get_device_name(device)}")
    print(
        f"{a.warmup} warm-up + {a.iterations} timed L-BFGS iterations; content "
        f"{Path(a.content).name}, style {Path(a.style).name}, weights {a.weights}"
    )
    memory = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "process peak RSS"
    print(
        f"s/iter = median (mean) of the timed iterations; memory = {memory}: base = before "
        "the engine starts, peak = whole run, loop = after warm-up"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device.type == "cpu" and load > 1.0:
        print(f"WARNING: 1-min load average is {load:.2f}; other processes skew CPU timings")
    print()


COLUMNS = {  # result key: heading
    "median_s": "s/iter",
    "mean_s": "(mean)",
    "base_mb": "base MB",
    "peak_mb": "peak MB",
    "loop_mb": "loop MB",
}


def row(label: str, size: object, px: str, prec: str, values: list[str]) -> str:
    return f"{label:<16}{size:>5}  {px:<9}{prec:<6}" + "".join(f"{v:>10}" for v in values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--iterations", type=int, default=10, help="timed iterations")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations before them")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="passed to ours; neural-style-pt is always fp32",
    )
    p.add_argument("--content", help="content image file (default: skimage astronaut)")
    p.add_argument("--style", help="style image file (default: skimage coffee)")
    p.add_argument("--skip-theirs", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: one measurement
    a = p.parse_args()
    if a.child:
        return child(a.child)
    if a.warmup < 1 or a.iterations < 1:
        p.error("--warmup and --iterations must be at least 1")
    if torch.device(a.device).type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {a.device}: CUDA is not available here")

    skip = "--skip-theirs was given" if a.skip_theirs else None
    if skip is None and importlib.util.find_spec("neural_style") is None:
        skip = f"neural-style is not installed ({INSTALL_HINT})"
    with tempfile.TemporaryDirectory(prefix="bench-gatys-") as tmp:
        a.workdir = tmp
        make_inputs(a, Path(tmp))
        header(a)
        print(row("engine", "size", "px", "prec", list(COLUMNS.values())))
        for size in a.sizes:
            rows = {}
            for engine, label in (("ours", "napari-nst"), ("theirs", "neural-style-pt")):
                if engine == "theirs" and skip:
                    continue
                result = spawn(a, engine, size)
                if isinstance(result, str):
                    print(f"{label:<16}{size:>5}  {result}")
                    continue
                rows[engine] = result
                values = [
                    f"{result[c]:.3f}" if c.endswith("_s") else f"{result[c]:.0f}" for c in COLUMNS
                ]
                print(row(label, size, result["px"], result["precision"], values), flush=True)
                if "evaluations_per_iteration" in result:
                    evaluations = result["evaluations_per_iteration"]
                    print(f"{'':<23}(forward + backward passes per timed iteration: "
                          f"{evaluations:.2f})")  # fmt: skip
            if len(rows) == 2:
                ratios = [
                    f"{rows['ours'][c] / rows['theirs'][c]:.2f}x" if rows["theirs"][c] else "-"
                    for c in COLUMNS
                ]
                print(row("ours / theirs", size, "", "", ratios))
    if skip:
        print(f"\nneural-style-pt skipped: {skip}")


if __name__ == "__main__":
    main()
