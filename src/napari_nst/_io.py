"""Reading and writing image files for the CLI (and, later, batch runs).

Writes are atomic (temporary file in the target folder, then rename) so an
interrupted run never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

EIGHT_BIT_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


class ImageFileError(ValueError):
    """An input file is missing or cannot be decoded as an image."""


def read_image(path: str | os.PathLike, role: str = "image") -> np.ndarray:
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{role} not found: {path}")
    try:
        return np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for undecodable files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageFileError(f"cannot read {role} {path}: {reason}") from None


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``image``; float data goes to 8-bit formats as 0–255, TIFF keeps it as is."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in EIGHT_BIT_SUFFIXES and image.dtype.kind == "f":
        image = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if suffix in {".jpg", ".jpeg"} and image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=suffix, prefix=".napari-nst-", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
    try:
        iio.imwrite(temporary, image, extension=suffix or ".png")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
