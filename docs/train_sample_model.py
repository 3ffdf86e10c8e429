"""Train the fast (Johnson) model for *The Starry Night* that ships with napari-nst.

The recipe of ``src/napari_nst/samples/starry_night.pth``, re-runnable offline:
the training images are scikit-image's bundled photographs and scans plus the
brain MRI slice and zebrafish micrograph in ``../shared/data`` (the Tübingen
photo is held out to judge the model), seen as random crops at several scales;
the loss network is the bundled original VGG19. The record (options, weights
hash, losses) is written beside the model as ``starry_night.pth.json``.

    python docs/train_sample_model.py [--steps N] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SKIMAGE = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "camera", "moon", "coins", "cell", "brick", "grass", "gravel", "clock",
)  # fmt: skip
SHARED_CONTENT = ("brain_t1_slice.png", "zebrafish_spinal_cord.png")
RECIPE = {
    "steps": 1200,
    "batch_size": 2,
    "image_size": 192,
    "style_size": 384,
    "content_weight": 1.0,
    "style_weight": 4.0,
    "learning_rate": 1e-3,
    "crop": "random",
    "checkpoint_every": 100,
    "vgg": "bundled",
    "seed": 42,
}


def training_images(folder: Path) -> list[Path]:
    """The offline training set as 8-bit PNGs (16-bit scans windowed by their range)."""
    from skimage import data

    written = []
    for name in SKIMAGE:
        image = getattr(data, name)()
        written.append(_write(folder / f"{name}.png", image))
    left, right, _ = data.stereo_motorcycle()
    written += [_write(folder / "motorcycle_left.png", left)]
    written += [_write(folder / "motorcycle_right.png", right)]
    for name in SHARED_CONTENT:
        written.append(_write(folder / name, iio.imread(SHARED / "content" / name)))
    return written


def _write(path: Path, image: np.ndarray) -> Path:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = image.astype(np.float32)
        low, high = np.percentile(image, [0.1, 99.9])
        image = np.rint(np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    iio.imwrite(path, image[..., :3] if image.ndim == 3 else image)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--out", default=str(ROOT / "src/napari_nst/samples/starry_night.pth"))
    args = parser.parse_args()
    from napari_nst import iter_train

    style = iio.imread(ROOT / "src/napari_nst/samples/starry_night.jpg")
    with tempfile.TemporaryDirectory() as folder:
        images = training_images(Path(folder))
        print(f"{len(images)} training images", file=sys.stderr)
        start = time.perf_counter()
        for step in iter_train(style, folder, args.out, **RECIPE | {"steps": args.steps}):
            if step.iteration % 25 == 0 or step.saved:
                losses = " ".join(f"{k} {v:.4g}" for k, v in step.losses.items())
                print(f"step {step.iteration}/{step.total} {losses} "
                      f"{time.perf_counter() - start:.0f} s{' saved' if step.saved else ''}",
                      file=sys.stderr, flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
