"""Cancel latency: seconds from ``cancel()`` to the run's last step, at each stage.

A worker thread drives the engine as the widget does; the main thread cancels
during setup (weights, style targets) or in the middle of an iteration, for the
Gatys method at 512 px and for a tiled fast run.

    python benchmarks/bench_cancel.py --size 512 --device cpu
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch


def measure(job, delay: float, after_first_step: bool) -> tuple[float, bool]:
    first, finished = threading.Event(), threading.Event()
    steps = []

    def work() -> None:
        for step in job.steps():
            steps.append(step)
            first.set()
        finished.set()

    thread = threading.Thread(target=work)
    thread.start()
    if after_first_step:
        first.wait()
    time.sleep(delay)  # a benchmark, not a test: a user's click lands at some moment
    clicked = time.perf_counter()
    job.cancel()
    finished.wait()
    thread.join()
    return time.perf_counter() - clicked, bool(steps and steps[-1].cancelled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from napari_nst.core import prepare
    from napari_nst.core.networks import TransformerNet

    rng = np.random.default_rng(0)
    content = rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    style = rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    gatys = {"vgg": "random", "device": args.device, "size": args.size, "iterations": 500}
    cases = [
        ("gatys: during setup (weights, style targets)", gatys, 0.05, False),
        ("gatys: mid-iteration (0.5 s into step 2)", gatys, 0.5, True),
        ("gatys: mid-iteration (1.5 s into step 2)", gatys, 1.5, True),
    ]
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "net.pth"
        torch.save(TransformerNet().state_dict(), checkpoint)
        fast = {"method": "fast", "checkpoint": str(checkpoint), "device": args.device,
                "tile": 384}  # fmt: skip
        cases.append(("fast: mid-tile (tiled 1024 px)", fast, 0.3, True))
        worst = 0.0
        for name, options, delay, after_first in cases:
            image = content if options.get("method") != "fast" else np.tile(content, (2, 2, 1))
            job = prepare(image, style, **options)
            latency, cancelled = measure(job, delay, after_first)
            worst = max(worst, latency)
            print(f"{name:<48} {latency:6.2f} s  cancelled={cancelled}", flush=True)
    print(f"worst case: {worst:.2f} s")


if __name__ == "__main__":
    main()
