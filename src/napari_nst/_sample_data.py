"""Offline sample data: a photo and a micrograph as content, a painting as style.

Everything comes from files installed with the packages (scikit-image's wheel and
our own package data), so File ▸ Open Sample works without a network.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

LayerData = list[tuple[np.ndarray, dict, str]]


def _read(name: str) -> np.ndarray:
    import imageio.v3 as iio

    with resources.as_file(resources.files("napari_nst") / "samples" / name) as path:
        return iio.imread(path)


def astronaut() -> LayerData:
    """Eileen Collins (NASA, public domain), shipped with scikit-image."""
    from skimage import data

    return [(data.astronaut(), {"name": "astronaut", "rgb": True}, "image")]


def cell() -> LayerData:
    """A gray light-microscopy image, shipped with scikit-image."""
    from skimage import data

    image = data.cell()
    return [(image, {"name": "cell", "colormap": "gray"}, "image")]


def starry_night() -> LayerData:
    """Van Gogh, The Starry Night (1889, public domain), 384 px, bundled with napari-nst."""
    return [(_read("starry_night.jpg"), {"name": "starry night", "rgb": True}, "image")]


SAMPLE_FILES = {"astronaut.png": astronaut, "cell.png": cell, "starry_night.jpg": starry_night}
"""The samples as files (``napari-nst samples``), for the README's first commands."""


def write_samples(folder: Path) -> list[Path]:
    """Write the sample images into ``folder`` (made if needed); returns their paths."""
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, sample in SAMPLE_FILES.items():
        path = folder / name
        shipped = resources.files("napari_nst") / "samples" / name
        if shipped.is_file():  # our own file: copied as it is, not re-encoded
            path.write_bytes(shipped.read_bytes())
        else:
            iio.imwrite(path, sample()[0][0])
        written.append(path)
    return written
