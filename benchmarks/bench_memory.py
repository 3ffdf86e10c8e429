"""The memory estimate next to the measured peak, so its calibration can be checked.

Each size runs in a fresh process (peak RSS only ever grows): the VGG weights are
loaded first, then a Gatys run of ``--iterations`` L-BFGS steps, enough for the
optimiser's history to fill; the peak RSS above the baseline is what the run
itself took. On a GPU the peak is torch's ``max_memory_allocated``.

    python benchmarks/bench_memory.py --sizes 128 256 384 512 --iterations 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys
import numpy as np, torch
from napari_nst.core import prepare
from napari_nst.core.vgg import load_vgg19
size, iterations, history = (int(value) for value in sys.argv[1:3] + sys.argv[4:5])
device = sys.argv[3]
load_vgg19("random", seed=0)
rng = np.random.default_rng(0)
content = rng.random((size, size, 3), dtype=np.float32)
style = rng.random((size, size, 3), dtype=np.float32)
job = prepare(content, style, size=size, iterations=iterations, vgg="random",
              device=device, lbfgs_history=history, luminance_only=False)
estimate = job._bytes_at(size)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for _ in job.steps():
    pass
if device.startswith("cuda"):
    peak = torch.cuda.max_memory_allocated()
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
print(json.dumps({"size": size, "estimate": estimate, "measured": peak}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384, 512])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--history", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"{'size':>6} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>6}")
    for size in args.sizes:
        command = [sys.executable, "-c", CHILD, str(size), str(args.iterations), args.device,
                   str(args.history)]  # fmt: skip
        row = json.loads(subprocess.run(command, capture_output=True, text=True, check=True)
                         .stdout.strip().splitlines()[-1])  # fmt: skip
        estimate, measured = row["estimate"] / 2**20, row["measured"] / 2**20
        print(f"{size:>6} {estimate:>13.0f} {measured:>13.0f} {estimate / measured:>6.2f}")


if __name__ == "__main__":
    main()
