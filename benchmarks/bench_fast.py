"""Fast (feed-forward) inference: seconds and peak memory per image size.

Each size runs in a fresh subprocess so its peak RSS (and CUDA peak) is its own.
The network is a seeded random TransformerNet in pytorch/examples' layout (the
published checkpoints cannot be downloaded here); speed and memory do not depend
on the weights' values.

    python benchmarks/bench_fast.py --sizes 512,1024,2048,8192 --device cpu
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(size: int, device: str, checkpoint: str, tile: int | None) -> dict[str, float]:
    import numpy as np
    import torch

    from napari_nst import iter_stylize
    from napari_nst.core.fast import FastTransfer, load_checkpoint
    from napari_nst.core.options import Options

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    options = {"method": "fast", "checkpoint": checkpoint, "device": device, "tile": tile}
    load_checkpoint(checkpoint)  # file reading is not inference
    job = FastTransfer(image, Options(**options))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    warm = FastTransfer(image[:256, :256], Options(**{**options, "tile": 0}))
    list(warm.steps())  # first-call costs (allocator, kernels) out of the timing
    start = time.perf_counter()
    steps = list(iter_stylize(image, **options))
    seconds = time.perf_counter() - start
    assert steps[-1].image.shape == image.shape
    result = {
        "size": size,
        "seconds": seconds,
        "megapixels_per_second": size * size / 1e6 / seconds,
        "tile": job.tile,
        "tiles": steps[-1].total if job.tile else 0,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    if device.startswith("cuda"):
        result["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024,2048,8192")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tile", type=int, default=None, help="default: automatic")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.device, args.checkpoint, args.tile)))
        return

    import torch

    from napari_nst.core.networks import TransformerNet

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = str(Path(folder) / "random.pth")
        torch.save(TransformerNet().state_dict(), checkpoint)
        results = []
        for size in (int(s) for s in args.sizes.split(",")):
            command = [sys.executable, __file__, "--child", str(size), "--device", args.device,
                       "--checkpoint", checkpoint]  # fmt: skip
            if args.tile is not None:
                command += ["--tile", str(args.tile)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            tiles = (
                "whole"
                if not result["tile"]
                else f"{result['tiles']} tiles of {result['tile']} px"
            )
            print(
                f"{size:>5} px  {result['seconds']:7.2f} s  "
                f"{result['megapixels_per_second']:6.2f} MP/s  peak RSS "
                f"{result['peak_rss_gb']:.2f} GB  ({tiles})",
                flush=True,
            )
    print(json.dumps({"device": args.device, "results": results}, indent=2))


if __name__ == "__main__":
    main()
