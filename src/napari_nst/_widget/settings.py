"""The Style Transfer widget's last used settings, kept between napari sessions.

They are the options of the last run started from the widget (not the layer
choices), as JSON in the user's configuration folder, where napari and its plugins
keep theirs (platformdirs, which napari uses for its own settings):

* Linux: ``~/.config/napari-nst/widget.json``
* macOS: ``~/Library/Application Support/napari-nst/widget.json``
* Windows: ``%LOCALAPPDATA%\\napari-nst\\widget.json``

``NAPARI_NST_CONFIG_DIR`` puts the folder elsewhere (the tests use it). A missing or
unreadable file means the defaults; the widget's *Restore defaults* goes back to them.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

FILENAME = "widget.json"


def settings_file() -> Path:
    folder = os.environ.get("NAPARI_NST_CONFIG_DIR")
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("napari-nst", appauthor=False)
    return Path(folder) / FILENAME


def load() -> dict[str, Any] | None:
    """The remembered options, or None (none yet, or a file that is not ours)."""
    try:
        data = json.loads(settings_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    options = data.get("options") if isinstance(data, dict) else None
    return options if isinstance(options, dict) else None


def save(options: dict[str, Any]) -> None:
    """Remember ``options``; a folder that cannot be written only means forgetting."""
    from ..core.files import write_json

    with contextlib.suppress(OSError, TypeError, ValueError):
        write_json(settings_file(), {"version": 1, "options": options})
