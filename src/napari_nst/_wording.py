"""Options named in messages, spelled for where the message is read.

The engine names an option as Python does (``vgg='bundled'``), right for
scripts; the command line shows the flag (``--vgg bundled``) and napari the
control (``vgg: bundled``), so a hint can be followed where it appears.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.options import Spec

_OPTION = re.compile(r"\b([a-z][a-z0-9_]*)='([^']*)'")


def for_cli(message: str) -> str:
    def flag(match: re.Match[str]) -> str:
        value = match[2] if " " not in match[2] else f"'{match[2]}'"
        return f"--{match[1].replace('_', '-')} {value}"

    return _OPTION.sub(flag, message)


def for_gui(message: str) -> str:
    return _OPTION.sub(lambda match: f"{match[1]}: {match[2]}", message)


def tooltip(spec: Spec) -> str:
    """A control's tooltip: the option table's help as a sentence, with its default."""
    from .core.options import shown_default

    return f"{spec.help[0].upper()}{spec.help[1:]} (default: {shown_default(spec)})."
