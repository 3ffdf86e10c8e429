"""``napari-nst``: the engine from a terminal (``stylize``, ``batch``, ``train``, ``samples``).

* ``commands``: the parser, :func:`main` and each subcommand's run;
* ``options``: the flags, built from the option table (:data:`napari_nst.core.options.TABLE`).
"""

from .commands import build_parser, main

__all__ = ["build_parser", "main"]
