"""Files: images read as napari shows them and written in a dtype the format holds,
and the one atomic writer every file of ours goes through (images, records, recipes,
settings, models).

Writes are atomic (temporary file in the target folder, then rename) so an
interrupted run never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

EIGHT_BIT_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
TIFF_SUFFIXES = {".tif", ".tiff"}


class ImageFileError(ValueError):
    """An input file is missing or cannot be decoded as an image."""


def read_image(path: str | os.PathLike, role: str = "image") -> np.ndarray:
    """The whole image (every page of a TIFF stack) in its own dtype, shaped as napari
    shows it.

    The rule is napari's own reader's: the array ``imageio.v3.imread`` returns (for a
    TIFF, tifffile's first series), taken as it is. Colour is samples in the last axis
    (3 or 4); a TIFF that stores its samples as planes (axes ``SYX``, which is what
    tifffile writes for a 3- or 4-slice volume given no ``photometric``) is a stack
    of S planes, as napari shows it, not an RGB image.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{role} not found: {path}")
    try:
        return np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for undecodable files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageFileError(f"cannot read {role} {path}: {reason}") from None


def write_image(path: str | os.PathLike, image: np.ndarray, rgb: bool | None = None) -> Path:
    """Write ``image``; float data goes to 8-bit formats as 0–255, TIFF keeps it as is.

    ``rgb`` says whether the last axis holds colour channels (TIFF needs to know:
    a gray stack of three slices has the same shape as a planar colour image).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in EIGHT_BIT_SUFFIXES and image.dtype.kind == "f":
        image = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if suffix in {".jpg", ".jpeg"} and image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    return atomic_write(path, lambda temporary: _write(temporary, image, suffix, rgb))


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Have ``write(temporary)`` fill a temporary file beside ``path``, then rename it to
    ``path``: readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(path.suffix, ".napari-nst-", path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; ours are ordinary files
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def cached_by_file(maxsize: int) -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    """The one per-process cache of things read from files: ``load(path)`` is called
    again only for a path not seen, or a file changed on disk since (its modification
    time or size); the wrapper keeps ``cache_info()`` and ``cache_clear()``."""

    def decorate(load: Callable[[Path], Any]) -> Callable[[Path], Any]:
        @functools.lru_cache(maxsize=maxsize)
        def cached(path: Path, mtime_ns: int, size: int) -> Any:
            return load(path)

        @functools.wraps(load)
        def loader(path: Path) -> Any:
            stat = path.stat()
            return cached(path, stat.st_mtime_ns, stat.st_size)

        loader.cache_info = cached.cache_info  # type: ignore[attr-defined]
        loader.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return loader

    return decorate


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2) + "\n"
    return atomic_write(path, lambda temporary: Path(temporary).write_text(text, "utf-8"))


def check_writable(path: str | os.PathLike, ndim: int, rgb: bool) -> None:
    """Refuse, before a run, an output format that cannot hold the result."""
    spatial = ndim - (1 if rgb else 0)
    suffix = Path(path).suffix.lower()
    if spatial > 2 and suffix not in TIFF_SUFFIXES:
        raise ImageFileError(
            f"the result is a stack ({spatial}-D); {suffix or 'that format'} holds one "
            "2-D image, so write it as .tif"
        )


def file_ready(
    image: np.ndarray, suffix: str, source_dtype: np.dtype, window: tuple[float, float]
) -> np.ndarray:
    """A gray result in the content's intensity range, in a dtype the format can hold.

    TIFF (and PNG for 8/16-bit) take the content's own integer dtype, so a 16-bit
    volume comes back as a 16-bit volume; other formats get the window as 0–255.
    """
    suffix = suffix.lower()
    integer = source_dtype.kind in "iu"
    png_ok = suffix == ".png" and source_dtype in (np.uint8, np.uint16)
    if integer and (suffix in TIFF_SUFFIXES or png_ok or source_dtype == np.uint8):
        info = np.iinfo(source_dtype)
        return np.clip(np.rint(image), info.min, info.max).astype(source_dtype)
    if suffix in TIFF_SUFFIXES:
        return image
    low, high = window
    return np.clip((image - low) / (high - low), 0, 1).astype(np.float32)


def _write(path: str, image: np.ndarray, suffix: str, rgb: bool | None) -> None:
    import imageio.v3 as iio
    import tifffile

    if suffix in TIFF_SUFFIXES:
        if rgb is None:
            rgb = image.ndim >= 3 and image.shape[-1] in (3, 4)
        photometric = "rgb" if rgb else "minisblack"
        extra = {"extrasamples": ["unassalpha"]} if rgb and image.shape[-1] == 4 else {}
        tifffile.imwrite(path, image, photometric=photometric, **extra)
        return
    if image.ndim > 3 or (image.ndim == 3 and not rgb and rgb is not None):
        raise ImageFileError(
            f"a result of shape {image.shape} needs a stack format; write it as .tif"
        )
    iio.imwrite(path, image, extension=suffix or ".png")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
