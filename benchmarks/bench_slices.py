"""Slice-to-slice consistency of whole-stack runs: does the output flicker through z?

Builds a small volume from a 2-D image (each slice a slightly smaller, slightly
noisy copy, as cross-sections through a head shrink towards the crown), then
compares the mean absolute difference between neighbouring output slices:

* independent: every slice stylised on its own (``stylize`` per plane);
* stack: ``stack="all"`` (each slice starts from its neighbour's result) with
  the inter-slice term at several ``slice_weight`` values.

    python benchmarks/bench_slices.py --content ../shared/data/content/brain_t1_slice.png \
        --style ../shared/data/style/starry_night.jpg --vgg random
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from skimage.transform import rescale

from napari_nst import iter_stylize
from napari_nst.core.files import read_image


def make_volume(image: np.ndarray, slices: int, seed: int = 0) -> np.ndarray:
    gray = image if image.ndim == 2 else image[..., :3].mean(axis=-1)
    gray = gray.astype(np.float32) / max(float(gray.max()), 1.0)
    height, width = gray.shape
    rng = np.random.default_rng(seed)
    volume = np.zeros((slices, height, width), np.float32)
    for k in range(slices):
        small = rescale(gray, 1 - 0.012 * k, anti_aliasing=True)
        top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
        volume[k, top : top + small.shape[0], left : left + small.shape[1]] = small
        volume[k] += rng.normal(0, 0.01, (height, width)).astype(np.float32)
    return np.clip(volume, 0, 1)


def neighbour_mad(stack: np.ndarray) -> float:
    return float(np.abs(np.diff(stack.astype(np.float64), axis=0)).mean())


def run_stack(
    volume: np.ndarray, style: np.ndarray, **options: object
) -> tuple[np.ndarray, float]:
    """The stylised stack and the mean final content loss of its planes."""
    result = np.zeros(volume.shape, np.float32)
    content_losses = []
    for step in iter_stylize(volume, style, stack="all", **options):
        if step.plane_done:
            result[step.index] = step.image
            content_losses.append(step.losses["content"])
    return result, float(np.mean(content_losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--vgg", default="torchvision")
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--slice-weights", default="0,0.1,0.5,2")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    volume = make_volume(read_image(args.content), args.slices)
    style = read_image(args.style)
    run = {
        "vgg": args.vgg,
        "size": args.size,
        "iterations": args.iterations,
        "device": args.device,
        "contrast_limits": (0.0, 1.0),
        "output_range": "unit",
    }
    report: dict[str, object] = {"content_mad": neighbour_mad(volume), **run}

    start = time.perf_counter()
    planes = [run_stack(plane[None], style, **run) for plane in volume]
    independent = np.concatenate([result for result, _ in planes])
    base, base_content = neighbour_mad(independent), float(np.mean([c for _, c in planes]))
    report["independent"] = {
        "mad": base,
        "content_loss": base_content,
        "seconds": time.perf_counter() - start,
    }
    print(f"content neighbour MAD {report['content_mad']:.4f}")
    print(f"independent slices:  MAD {base:.4f}  content loss {base_content:.4g}")

    for weight in (float(w) for w in args.slice_weights.split(",")):
        start = time.perf_counter()
        result, content_loss = run_stack(volume, style, slice_weight=weight, **run)
        mad = neighbour_mad(result)
        report[f"stack slice_weight={weight:g}"] = {
            "mad": mad,
            "reduction": 1 - mad / base,
            "content_loss": content_loss,
            "seconds": time.perf_counter() - start,
        }
        print(
            f"stack, slice_weight={weight:<6g} MAD {mad:.4f}  reduction {1 - mad / base:+.1%}"
            f"  content loss {content_loss:.4g}",
            flush=True,
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
