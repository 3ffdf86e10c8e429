"""The engine: pure PyTorch + NumPy, no napari and no Qt (importable headless)."""

from .api import iter_stylize, prepare, stylize
from .gatys import StyleTransfer
from .options import Options
from .step import STOP, Step
from .training import iter_train, train

__all__ = [
    "STOP",
    "Options",
    "Step",
    "StyleTransfer",
    "iter_stylize",
    "iter_train",
    "prepare",
    "stylize",
    "train",
]
