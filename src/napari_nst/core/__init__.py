"""The engine: pure PyTorch + NumPy, no napari and no Qt (importable headless).

Every consumer (widget, CLI, batch, Dask, scripts) calls :func:`prepare` and drives the
run it gets (a :class:`~.step.Run`) through its stream of :class:`Step` s. Read in
this order:

* ``step``: the Step streamed out, the STOP sent in, the Run protocol every run offers;
* ``api``: ``prepare`` / ``iter_stylize`` / ``stylize``, and ``run_to_end``, the one loop
  that drives a run to its end;
* ``options``, ``option_table``: every option, validated once (the weights sent into a
  running optimisation too); described once for the CLI, the widget and the README;
* ``imaging`` (arrays in), ``rendering`` (arrays out), ``files`` (image files, the one
  atomic writer, the per-file cache);
* the Gatys run: ``gatys`` (the run and its planes), ``plane_run`` (one level of one
  plane), ``pyramid`` (coarse to fine), ``optim`` (objective and L-BFGS closure),
  ``losses``, ``style_targets``, ``regions`` (a style per label), ``features``
  (VGG19 as an encoder), ``weights`` (where VGG19 comes from), ``safeload``;
* the fast run: ``fast``, ``transformer``, ``tiling``; ``training`` trains a model;
* ``devices`` (device, precision, thread policy), ``memory`` (will it fit?);
* ``provenance``: the run record, recipes (a record as options) and the replay of
  how a run was steered;
* ``quality``: content and style distances in real VGG19 features.
"""

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
