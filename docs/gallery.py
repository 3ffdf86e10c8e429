"""Make the README's gallery: a photo, a brain MRI slice and a micrograph, each with the
``faithful`` and ``bold`` presets, with real weights (the bundled VGG19) and defaults.

    python docs/gallery.py [--data ../shared/data] [--out docs/gallery]

Offline. The images are the project's shared test data: ``content/tubingen.jpg``,
``content/brain_t1_slice.png`` (gray), ``content/zebrafish_spinal_cord.png`` (16-bit
gray), with ``style/starry_night.jpg`` and ``style/the_scream.jpg``. Results are kept
at the size they were computed (``output_size="working"``, the CPU default of 384 px).
Writes one JPEG per result, ``gallery.jpg`` (a row per content: content | faithful |
bold | painting; for the gray scans also bold in colour, ``luminance_only=False``,
before the painting) and ``gallery.json`` (distances, SSIM, seconds, CPU flags;
gray results measured on brightness, as ``napari_nst.core.losses`` explains).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "photo": ("content/tubingen.jpg", "style/starry_night.jpg"),
    "mri": ("content/brain_t1_slice.png", "style/the_scream.jpg"),
    "micrograph": ("content/zebrafish_spinal_cord.png", "style/starry_night.jpg"),
}
PRESETS = {"faithful": {}, "bold": {}, "bold colour": {"preset": "bold", "luminance_only": False}}
HEIGHT = 240


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    args = parser.parse_args()
    from napari_nst import stylize
    from napari_nst.core.losses import distances, gray_ssim

    args.out.mkdir(parents=True, exist_ok=True)
    report, rows = {"cpu": cpu_flags()}, []
    for name, (content_file, style_file) in ROWS.items():
        content = iio.imread(args.data / content_file)
        style = iio.imread(args.data / style_file)
        tiles, gray = [display(content)], content.ndim == 2
        for preset, options in PRESETS.items():
            if preset == "bold colour" and not gray:
                continue
            start = time.perf_counter()
            result = stylize(
                content, style, **({"preset": preset} | options), output_size="working"
            )
            seconds = time.perf_counter() - start
            window = (content.min(), content.max()) if result.ndim == 2 else (0.0, 1.0)
            shown = display(result, window=window)  # gray: the scan's range; colour: [0, 1]
            iio.imwrite(args.out / f"{name}_{preset.replace(' ', '_')}.jpg", shown, quality=90)
            unit, reference = shown / 255.0, display(content) / 255.0
            found = distances(unit, reference, style, gray=gray and result.ndim == 2)
            report[f"{name} {preset}"] = {
                "content": round(found.content, 3),
                "style": round(found.style, 3),
                "gray_ssim": round(gray_ssim(unit, reference), 3),
                "seconds": round(seconds, 1),
                "size": list(result.shape[:2]),
            }
            print(name, preset, report[f"{name} {preset}"], flush=True)
            tiles.append(shown)
        tiles.append(display(style))
        rows.append(row(tiles))
    width = max(r.shape[1] for r in rows)
    padded = [
        np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    iio.imwrite(args.out / "gallery.jpg", np.concatenate(padded)[:-6], quality=88)
    (args.out / "gallery.json").write_text(json.dumps(report, indent=1) + "\n")


def display(image: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """8-bit RGB for a picture: gray windowed by ``window`` (default: its own range)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        low, high = window if window is not None else (image.min(), image.max())
        image = np.clip((image.astype(np.float32) - low) / (high - low), 0, 1)
        image = np.rint(image * 255).astype(np.uint8)
    return np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]


def row(tiles: list[np.ndarray]) -> np.ndarray:
    from skimage.transform import resize

    scaled = []
    for tile in tiles:
        width = round(tile.shape[1] * HEIGHT / tile.shape[0])
        image = resize(tile, (HEIGHT, width), preserve_range=True, anti_aliasing=True)
        scaled += [image.astype(np.uint8), np.full((HEIGHT, 6, 3), 255, np.uint8)]
    return np.concatenate(scaled[:-1], axis=1)


def cpu_flags() -> str:
    flags = (
        set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    )
    return " ".join(sorted(flags & {"avx512_bf16", "amx_bf16"})) or "no bf16"


if __name__ == "__main__":
    main()
