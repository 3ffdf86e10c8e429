"""The engine: pure PyTorch + NumPy, no napari and no Qt (importable headless).

Every consumer (widget, CLI, batch, Dask, scripts) calls :func:`prepare` and drives the
run it gets (a :class:`~.step.Run`) through its stream of :class:`Step` s. Fifteen
modules, read in this order:

* ``step``: the Step streamed out, the STOP sent in, the Run protocol every run offers;
* ``api``: ``prepare`` / ``iter_stylize`` / ``stylize``, and ``run_to_end``, the one loop
  that drives a run to its end;
* ``options``: every option, validated once (:class:`Options`), and described once
  (``TABLE``) for the CLI, the widget and the README;
* ``images``: a user's array in (dtype, intensity window, stacks) and the result out,
  in the user's layout;
* ``gatys``: the Gatys run (:class:`StyleTransfer`) over a content's planes, coarse to
  fine;
* ``optim``: the loop of one level of one plane, its objective and L-BFGS closure;
* ``losses``: content, style (Gram, per region, several styles mixed) and total
  variation; the distances that measure a result;
* ``vgg``: VGG19 as an encoder, where its weights come from, and reading them safely;
* ``fast``: the fast run (a trained network over planes or tiles); ``universal``:
  universal style transfer (WCT, AdaIN: any style in one pass per level, through a
  decoder); ``networks``: their feed-forward networks (Johnson's, the encoders and
  decoders) and reading the decoders' files; ``training``: training a fast network or a
  decoder;
* ``devices``: device, precision, threads, and whether a run fits in memory;
* ``provenance``: the run record, recipes (a record as options) and the replay of how a
  run was steered;
* ``files``: image files, the one atomic writer, the per-file cache.
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
