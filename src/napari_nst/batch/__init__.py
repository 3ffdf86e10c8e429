"""Batch runs and Dask: many content images (or a stack's planes) through one engine.

* ``plan``: which inputs to run, what is already finished, and :func:`run_batch`, the
  Python form of ``napari-nst batch``;
* ``item``: one input image to one output image and its record, the unit of work of
  every runner (this process, or a Dask worker);
* ``cluster``: a Dask client (local or remote) and the items run on it, with retries;
* ``stack``: the planes of one stack on a Dask cluster, as one :class:`~napari_nst.core.step.Run`.

No napari or Qt imports: the CLI and the widget build on this package.
"""

from .item import BatchError, Item, Result, run_item, sidecar
from .plan import (
    IMAGE_SUFFIXES,
    Report,
    engine_cache_stats,
    execute,
    find_inputs,
    is_finished,
    load_recipe,
    options_with_recipe,
    plan,
    run_batch,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "BatchError",
    "Item",
    "Report",
    "Result",
    "engine_cache_stats",
    "execute",
    "find_inputs",
    "is_finished",
    "load_recipe",
    "options_with_recipe",
    "plan",
    "run_batch",
    "run_item",
    "sidecar",
]
