"""The public entry points: validate once, then run the right engine.

``prepare`` is where every consumer starts (widget, CLI, batch, scripts), so the
rules for turning user input into a run live in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .fast import FastTransfer
from .gatys import StyleTransfer
from .options import Options
from .step import Step


def prepare(content: object, style: object = None, **options: Any) -> StyleTransfer | FastTransfer:
    """Validate inputs and options; raises ``ValueError`` with a readable message.

    ``method="fast"`` applies ``checkpoint`` (its style is baked in; ``style`` is
    not used); ``"gatys"`` optimises towards ``style``: one image, or a list whose
    Gram targets are mixed by ``style_blend_weights``.
    """
    labels = options.pop("labels", None)
    parsed = Options.from_kwargs(options)
    if parsed.method == "fast":
        if labels is not None:
            raise ValueError("labels (styles per region) are for method 'gatys'")
        return FastTransfer(content, parsed)
    return StyleTransfer(content, style, parsed, labels)


def iter_stylize(content: object, style: object = None, **options: Any) -> Iterator[Step]:
    """Stream a run as :class:`Step`s; see the README for every option.

    Inputs and options are validated immediately (not on first ``next``), so
    errors surface where the call is made.
    """
    return prepare(content, style, **options).steps()


def stylize(content: object, style: object = None, **options: Any) -> np.ndarray:
    """Run to completion and return the stylised image (or stack) in the content's layout."""
    job = prepare(content, style, **options)
    result = job.rendering.empty()
    for step in job.steps():
        if step.image is not None:
            result[step.index] = step.image
    return result
