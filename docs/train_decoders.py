"""Train the universal-style-transfer decoders that ship with napari-nst.

The recipe of ``src/napari_nst/decoders/reluN_1.safetensors``, re-runnable offline:
each decoder inverts the bundled VGG19 at one level (Li et al. 2017: pixel plus
feature reconstruction loss), trained on scikit-image's bundled photographs and
scans, the brain MRI slice and zebrafish micrograph in ``../shared/data`` and two
paintings, seen as random crops at several scales. ``coffee``, ``rocket`` and the
Tübingen photo are held aside: ``--psnr`` reports decode(encode(x)) on them. Each
file's header holds its level, the encoder's hash and the training record.

    python docs/train_decoders.py [--levels relu1_1,relu2_1,relu3_1] [--steps N] [--psnr]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "src" / "napari_nst" / "decoders"
HELD_ASIDE = ("coffee", "rocket")
PAINTINGS = (ROOT / "src/napari_nst/samples/starry_night.jpg", SHARED / "style/the_scream.jpg")
RECIPES = {
    "relu1_1": {"steps": 4000, "batch_size": 8, "image_size": 128, "learning_rate": 1e-3},
    "relu2_1": {"steps": 1000, "batch_size": 8, "image_size": 128, "learning_rate": 1e-3},
    "relu3_1": {"steps": 1500, "batch_size": 8, "image_size": 128, "learning_rate": 1e-3},
    "relu4_1": {"steps": 4000, "batch_size": 8, "image_size": 128, "learning_rate": 1e-3},
}
COMMON = {"feature_weight": 1.0, "checkpoint_every": 100, "crop": "random", "seed": 42}


def _sample_model_script():
    spec = importlib.util.spec_from_file_location("recipe", ROOT / "docs/train_sample_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_images(folder: Path) -> list[Path]:
    """The sample model's training set, less the held-aside photos, plus two paintings."""
    recipe = _sample_model_script()
    written = [p for p in recipe.training_images(folder) if p.stem not in HELD_ASIDE]
    for name in HELD_ASIDE:
        (folder / f"{name}.png").unlink(missing_ok=True)
    for painting in PAINTINGS:
        written.append(recipe._write(folder / painting.name, iio.imread(painting)))
    return written


def held_aside() -> dict[str, np.ndarray]:
    from skimage import data

    photos = {name: getattr(data, name)() for name in HELD_ASIDE}
    photos["tubingen"] = iio.imread(SHARED / "content/tubingen.jpg")
    return photos


def psnr(path: Path, size: int = 512) -> dict[str, float]:
    """PSNR (dB) of decode(encode(x)) on the held-aside photos at ``size`` px."""
    import torch

    from napari_nst.core.images import resize, working_shape
    from napari_nst.core.networks import load_decoders

    pair = next(iter(load_decoders(str(path)).pairs.values()))
    scores = {}
    for name, photo in held_aside().items():
        x = torch.from_numpy(photo[..., :3] / 255.0).float().permute(2, 0, 1)[None]
        x = resize(x, working_shape(x.shape[-2:], size))
        with torch.no_grad():
            y = pair.decoder(pair.encoder(x)).clamp(0, 1)[..., : x.shape[-2], : x.shape[-1]]
        scores[name] = float(-10 * torch.log10(((y - x) ** 2).mean()))
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="relu1_1,relu2_1,relu3_1")
    parser.add_argument("--steps", type=int, help="instead of each level's recipe")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--psnr", action="store_true", help="only report the PSNR")
    args = parser.parse_args()
    from napari_nst.core.training import iter_train_decoder

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for level in args.levels.split(","):
        path = out / f"{level}.safetensors"
        if not args.psnr:
            recipe = COMMON | RECIPES[level] | ({"steps": args.steps} if args.steps else {})
            with tempfile.TemporaryDirectory() as folder:
                images = training_images(Path(folder))
                print(f"{level}: {len(images)} training images, {recipe}", file=sys.stderr)
                start = time.perf_counter()
                for step in iter_train_decoder(folder, path, level=level, **recipe):
                    if step.iteration % 50 == 0 or step.saved:
                        losses = " ".join(f"{k} {v:.4g}" for k, v in step.losses.items())
                        print(f"{level} step {step.iteration}/{step.total} {losses} "
                              f"{time.perf_counter() - start:.0f} s", file=sys.stderr,
                              flush=True)  # fmt: skip
        scores = psnr(path)
        shown = ", ".join(f"{name} {value:.2f} dB" for name, value in scores.items())
        print(f"{level}: PSNR of decode(encode(x)) at 512 px: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
