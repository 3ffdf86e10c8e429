"""Universal style transfer (WCT, AdaIN) with the shipped decoders: time, peak memory,
quality, and the README's picture.

    python benchmarks/bench_universal.py [--size 1024] [--repeats 3] [--tile PX]
        [--precision auto|fp32|bf16] [--out benchmarks/results]
        [--picture docs/gallery/universal_photo.jpg]

The Tübingen photo (``../shared/data``, held aside from the decoders' training) with
*The Starry Night*, at ``--size`` px (longest side). Each method runs in a child
process of its own, so its peak resident memory (``ru_maxrss``) is its own: one warm-up
run (reading the VGG19 and the decoders), then ``--repeats`` timed runs from
``prepare`` to the final image, as a user of the API sees them. Quality is the
style distance of the real-results issue (:func:`napari_nst.core.losses.distances`,
at 512 px): the result's against the content image's own, with the content distance
beside it. Writes ``universal_<size>.json`` and a picture (content | style | WCT |
AdaIN). Prints the CPU's bf16 flags beside the timings.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONTENT = SHARED / "content" / "tubingen.jpg"
STYLE = ROOT / "src" / "napari_nst" / "samples" / "starry_night.jpg"


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = sorted({f for f in ("avx512_bf16", "amx_bf16") if f in text.split()})
    return " ".join(flags) or "no bf16 flags (AVX2 only)"


def child(
    method: str, size: int, repeats: int, tile: int | None, precision: str, out: Path
) -> None:
    import torch

    from napari_nst.core import prepare
    from napari_nst.core.api import run_to_end

    content, style = iio.imread(CONTENT), iio.imread(STYLE)
    options = {"method": method, "size": size, "output_size": "working", "precision": precision}
    if tile is not None:
        options["tile"] = tile
    times, result, run = [], None, None
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        run = prepare(content, style, **options)
        result = run_to_end(run).image
        if attempt:  # the first run reads the VGG19 and the decoders
            times.append(time.perf_counter() - start)
    assert run is not None and result is not None
    iio.imwrite(out, result)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = run.info()
    print(json.dumps({
        "method": method, "seconds": times, "median_s": float(np.median(times)),
        "peak_rss_mib": round(peak_mib), "levels": info["levels"], "tile": info["tile"],
        "precision": info["precision"], "working_size": info["working_size"],
        "threads": torch.get_num_threads(),
    }))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile", type=int, help="force this tile size (default: auto)")
    parser.add_argument("--methods", default="wct,adain")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="fp32 measures an AVX2-only CPU's path on any CPU")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--picture", default=str(ROOT / "docs/gallery/universal_photo.jpg"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.size, args.repeats, args.tile, args.precision, Path(args.image))
        return 0

    from napari_nst.core.images import resize, working_shape  # noqa: F401 (torch loaded)
    from napari_nst.core.losses import distances

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    content, style = iio.imread(CONTENT), iio.imread(STYLE)
    flags = cpu_flags()
    report = {"cpu_bf16": flags, "size": args.size, "content": CONTENT.name,
              "style": STYLE.name, "methods": {}}  # fmt: skip
    own = distances(content, content, style, size=512)
    report["content_image"] = own.to_dict()
    print(f"CPU: {flags}; content's own style distance {own.style:.3f}", flush=True)
    suffix = f"_tile{args.tile}" if args.tile is not None else ""
    suffix += f"_{args.precision}" if args.precision != "auto" else ""
    images = {}
    for method in args.methods.split(","):
        image = out / f"universal_{method}_{args.size}{suffix}.png"
        command = [sys.executable, __file__, "--child", method, "--size", str(args.size),
                   "--repeats", str(args.repeats), "--precision", args.precision,
                   "--image", str(image)]  # fmt: skip
        if args.tile is not None:
            command += ["--tile", str(args.tile)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        images[method] = iio.imread(image)
        quality = distances(images[method], content, style, size=512)
        measured |= {
            "style_distance": quality.style,
            "content_distance": quality.content,
            "style_below_content_image": 1 - quality.style / own.style,
        }
        report["methods"][method] = measured
        print(f"{method}: {measured['median_s']:.2f} s median of {args.repeats} at "
              f"{measured['working_size']} ({measured['precision']}, {measured['threads']} "
              f"threads, tile {measured['tile']}), peak RSS {measured['peak_rss_mib']} MiB; "
              f"style distance {quality.style:.3f} ({measured['style_below_content_image']:.0%} "
              f"below the content image's), content distance {quality.content:.3f}  [{flags}]",
              flush=True)  # fmt: skip
    path = out / f"universal_{args.size}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    if args.picture and len(images) == 2 and args.tile is None and args.precision == "auto":
        _picture(content, style, images, Path(args.picture))
    print(f"wrote {path}")
    return 0


def _picture(content, style, images, path: Path, height: int = 384) -> None:
    """content | style | WCT | AdaIN, each ``height`` px tall, as a JPEG."""
    from skimage.transform import resize

    def scaled(image):
        image = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, -1)
        width = round(image.shape[1] * height / image.shape[0])
        return (resize(image, (height, width), anti_aliasing=True) * 255).astype(np.uint8) \
            if image.dtype == np.uint8 else image  # fmt: skip

    panels = [scaled(content), scaled(style), *(scaled(images[m]) for m in ("wct", "adain"))]
    gap = np.full((height, 8, 3), 255, np.uint8)
    row = np.concatenate([x for panel in panels for x in (panel, gap)][:-1], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, row, quality=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
