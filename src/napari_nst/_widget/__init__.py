"""The *Style Transfer* dock, in parts that stand alone:

* ``dock``: :class:`StyleTransferWidget`, which composes the parts below and wires them;
* ``essentials``: content, style, method, preset, strength, size, iterations;
* ``controls``: the collapsible :class:`~.controls.Section` and small building blocks;
* ``sections``: *Look*, *Loss weights*, *Stacks & cluster*, *Engine*;
* ``styles``: *More styles & regions*; ``explore`` (with ``sweep`` and ``compare``):
  sweeps, side-by-side comparison, fade; ``recipes``: load, export, restore defaults;
* ``request``: the typed :class:`~.request.RunRequest`; ``session``: a run's life
  (worker, record, output layer, progress, pause, continue); ``queue``: runs waiting;
* ``loss_plot``: the live loss curve; ``settings``: the last used settings on disk.
"""

from .dock import StyleTransferWidget

__all__ = ["StyleTransferWidget"]
