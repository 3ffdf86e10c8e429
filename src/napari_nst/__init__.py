"""Neural style transfer for napari, with a CLI and a streaming Python API.

``from napari_nst import stylize, iter_stylize, Step`` (and ``train``,
``iter_train`` for fast-style models). PyTorch is imported on
first use of these names, so napari starts as fast with the plugin installed as
without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["STOP", "Step", "__version__", "iter_stylize", "iter_train", "stylize", "train"]
_ENGINE = {"STOP", "Step", "iter_stylize", "iter_train", "stylize", "train"}

if TYPE_CHECKING:
    from .core import STOP, Step, iter_stylize, iter_train, stylize, train


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        return getattr(import_module(".core", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
