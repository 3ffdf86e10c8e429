"""Batch throughput: items per second for the fast method, in-process and on Dask.

Runs one batch of synthetic photos (PNG in, PNG and a JSON sidecar out) with a
seeded random TransformerNet in pytorch/examples' layout (speed does not depend
on the weights' values) three ways: in this process, and on a local Dask cluster
of 1 and of 2 worker processes, as ``napari-nst batch --workers N`` runs them
(each worker gets cores / N torch threads). Each way is warmed up first (model
loaded, first-call costs paid), then timed ``--repeat`` times (the median and the
best are printed: on a shared machine, runs with more than one torch thread per
process slow down badly whenever another process holds a core); the cluster's
start-up time is reported separately.

    python benchmarks/bench_batch.py                     # 24 images of 256 px
    python benchmarks/bench_batch.py --items 48 --size 512 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def make_inputs(folder: Path, items: int, size: int) -> None:
    import imageio.v3 as iio
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    for k in range(items):
        base = np.stack([np.sin((7 + k) * x), np.cos(5 * y + k), np.sin(9 * (x + y))], axis=-1)
        image = (base + 1) / 2 * 0.8 + 0.2 * rng.random((size, size, 3))
        iio.imwrite(folder / f"photo{k:03d}.png", np.rint(image * 255).astype(np.uint8))


def timed(inputs: Path, outdir: Path, options: dict, client=None, repeat: int = 1) -> list[float]:
    """Seconds per run of the whole batch (each run redoes every item)."""
    from napari_nst.batch import run_batch

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        report = run_batch([str(inputs)], outdir, client=client, overwrite=True, **options)
        times.append(time.perf_counter() - start)
        if report.failed or report.skipped:
            raise SystemExit(f"unexpected: {report.failed} failed, {report.skipped} skipped")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--size", type=int, default=256, help="image side in px")
    parser.add_argument("--workers", default="1,2", help="local cluster sizes to try")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per way")
    args = parser.parse_args()

    import torch

    from napari_nst.batch.cluster import open_client
    from napari_nst.core.networks import TransformerNet

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(f"{cores} CPU cores, torch {torch.__version__}, load average {load:.2f}, "
          f"{args.items} images of {args.size} px, fast method")  # fmt: skip
    if load > 0.5 * cores:
        print("warning: the machine is busy; numbers will be low and noisy")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        torch.manual_seed(0)
        checkpoint = root / "random.pth"
        torch.save(TransformerNet().state_dict(), checkpoint)
        inputs, warm = root / "inputs", root / "warm"
        make_inputs(inputs, args.items, args.size)
        make_inputs(warm, 2 * max(int(n) for n in args.workers.split(",")), args.size)
        options = {"method": "fast", "checkpoint": str(checkpoint), "device": "cpu"}

        def report(way: str, times: list[float], startup: float | None = None) -> None:
            rates = sorted(args.items / seconds for seconds in times)
            median, best = statistics.median(rates), rates[-1]
            extra = f"  (cluster start {startup:.1f} s)" if startup is not None else ""
            print(f"{way:<22} {median:6.2f} items/s median, {best:6.2f} best{extra}", flush=True)
            results.append(
                {
                    "way": way,
                    "seconds": times,
                    "items_per_second_median": median,
                    "items_per_second_best": best,
                    "cluster_start_seconds": startup,
                }
            )

        timed(warm, root / "out-warm-local", options)
        way = f"in-process x {torch.get_num_threads()} thr"
        report(way, timed(inputs, root / "local", options, repeat=args.repeat))
        for workers in (int(n) for n in args.workers.split(",")):
            threads = max(1, cores // workers)
            start = time.perf_counter()
            with open_client(workers=workers) as client:
                client.wait_for_workers(workers)
                startup = time.perf_counter() - start
                run = {**options, "threads": threads}
                timed(warm, root / f"out-warm-{workers}", run, client)
                times = timed(inputs, root / f"dask-{workers}", run, client, args.repeat)
            report(f"{workers} worker(s) x {threads} thr", times, startup)
    summary = {"items": args.items, "size": args.size, "load_after": os.getloadavg()[0]}
    print(json.dumps({**summary, "results": results}, indent=2))


if __name__ == "__main__":
    main()
