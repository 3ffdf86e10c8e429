"""Does coarse-to-fine pay? Time to reach the single-scale run's final loss.

Arm ``single`` optimises at the full size for ``--iterations`` L-BFGS steps and
records its final total loss. Arm ``pyramid`` runs the coarse-to-fine schedule
and stops as soon as the total loss at the full size is at or below that
target (losses of the coarse levels are at other sizes and do not count). Both
arms log wall time and this process's CPU time per step: CPU time is the fair
clock when other work shares the machine.

    python benchmarks/bench_pyramid.py --arm single --out single.json
    python benchmarks/bench_pyramid.py --arm pyramid --target single.json --out pyramid.json
    python benchmarks/bench_pyramid.py --report single.json pyramid.json

Without ``--target`` the pyramid arm runs its whole schedule (give it fewer
full-size ``--iterations`` and the coarse levels' ``--pyramid-iterations``), so
both arms can run at once; ``--report`` then finds the crossing in its trace.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def run_arm(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from skimage import io

    from napari_nst.core import STOP, prepare

    torch.set_num_threads(args.threads)
    content = io.imread(DATA / "content" / "tubingen.jpg")
    style = io.imread(DATA / "style" / "starry_night.jpg")
    target = None
    if args.arm == "pyramid" and args.target:
        target = json.loads(Path(args.target).read_text())["final_loss"]
    job = prepare(
        np.asarray(content), np.asarray(style), size=args.size, iterations=args.iterations,
        vgg="random", seed=0, device="cpu", **_pyramid(args.arm),
        **({"pyramid_iterations": args.pyramid_iterations} if args.pyramid_iterations else {}),
    )  # fmt: skip
    trace, reached = [], None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    steps = job.steps()
    for step in steps:
        if step.cancelled or "total" not in step.losses:
            continue
        row = {
            "iteration": step.iteration,
            "level": getattr(step, "level", 0),
            "wall": time.perf_counter() - wall0,
            "cpu": time.process_time() - cpu0,
            "total": step.losses["total"],
        }
        trace.append(row)
        at_full_size = row["level"] == getattr(step, "levels", 1) - 1
        if target is not None and at_full_size and row["total"] <= target and reached is None:
            reached = row
            steps.send(STOP)
            break
    result = {"arm": args.arm, "size": args.size, "threads": args.threads, "trace": trace}
    result["final_loss"] = trace[-1]["total"]
    result["reached"] = reached
    result["schedule"] = job.info().get("pyramid")
    return result


def _pyramid(arm: str) -> dict:
    from napari_nst.core.options import Options

    if arm == "pyramid":
        return {"pyramid": "on"}
    # (The baseline was first run before the option existed; at 512 px "auto" is off.)
    return {"pyramid": "off"} if hasattr(Options(), "pyramid") else {}


def report(single_path: str, pyramid_path: str) -> None:
    single = json.loads(Path(single_path).read_text())
    pyramid = json.loads(Path(pyramid_path).read_text())
    end = single["trace"][-1]
    print(f"single-scale: {len(single['trace'])} iterations, final loss {end['total']:.4g}, "
          f"{end['wall']:.0f} s wall, {end['cpu']:.0f} s CPU")  # fmt: skip
    levels = max(row["level"] for row in pyramid["trace"]) + 1
    reached = next(
        (row for row in pyramid["trace"]
         if row["level"] == levels - 1 and row["total"] <= end["total"]),
        None,
    )  # fmt: skip
    if reached is None:
        last = pyramid["trace"][-1]
        print(f"pyramid: did not reach it; best {last['total']:.4g} after {last['cpu']:.0f} s CPU")
        return
    wall, cpu = reached["wall"], reached["cpu"]
    print(f"pyramid {pyramid['schedule']}: reached {reached['total']:.4g} at iteration "
          f"{reached['iteration']}, {wall:.0f} s wall, {cpu:.0f} s CPU")  # fmt: skip
    print(f"ratio: {wall / end['wall']:.2f} wall, {cpu / end['cpu']:.2f} CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", choices=["single", "pyramid"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pyramid-iterations", type=int, help="per coarse level (pyramid arm)")
    parser.add_argument("--target", help="the single arm's JSON (pyramid arm)")
    parser.add_argument("--out", help="write this arm's trace as JSON")
    parser.add_argument("--report", nargs=2, metavar=("SINGLE", "PYRAMID"))
    args = parser.parse_args()
    if args.report:
        report(*args.report)
        return
    result = run_arm(args)
    if args.out:
        Path(args.out).write_text(json.dumps(result))
    last = result["trace"][-1]
    print(f"{args.arm}: final loss {last['total']:.4g}, {last['wall']:.0f} s wall, "
          f"{last['cpu']:.0f} s CPU, reached {result['reached']}")  # fmt: skip


if __name__ == "__main__":
    main()
