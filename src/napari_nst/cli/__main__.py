"""``python -m napari_nst.cli``: the same as the ``napari-nst`` command."""

from .commands import main

raise SystemExit(main())
