"""The public entry points: validate once, then run the right engine.

``prepare`` is where every consumer starts (widget, CLI, batch, scripts), so the
rules for turning user input into a run live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

import numpy as np

from .devices import torch_threads
from .fast import FastTransfer
from .gatys import StyleTransfer
from .images import place
from .options import UNIVERSAL, Options
from .provenance import Recipe, parse_recipe, steered
from .step import Run, Step
from .universal import UniversalTransfer


def prepare(
    content: object, style: object = None, *, recipe: object = None, **options: Any
) -> StyleTransfer | FastTransfer | UniversalTransfer:
    """Validate inputs and options; raises ``ValueError`` with a readable message.

    ``method="fast"`` applies ``checkpoint`` (its style is baked in; ``style`` is
    not used); ``"gatys"`` optimises towards ``style``: one image, or a list whose
    Gram targets are mixed by ``style_blend_weights``; ``"wct"`` and ``"adain"`` give
    the content ``style``'s feature statistics in one pass per level (their transforms
    mixed by ``style_blend_weights``). ``recipe`` (a run record or
    a dict of options) supplies options first; those given here override it.
    """
    labels = options.pop("labels", None)
    if recipe is not None:
        options = parse_recipe(recipe).merged(options)
    parsed = Options.from_kwargs(options)
    if parsed.method == "fast":
        if labels is not None:
            raise ValueError("labels (styles per region) are for methods gatys, wct and adain")
        return FastTransfer(content, parsed)
    if parsed.method in UNIVERSAL:
        return UniversalTransfer(content, style, parsed, labels)
    return StyleTransfer(content, style, parsed, labels)


def iter_stylize(
    content: object, style: object = None, *, recipe: object = None, **options: Any
) -> Iterator[Step]:
    """Stream a run as :class:`Step`s; see the README for every option.

    Inputs and options are validated immediately (not on first ``next``), so
    errors surface where the call is made. A recipe from a run record also brings
    the record's torch thread count, in force while the run computes.
    """
    recipe = _parsed(recipe)
    steps = replayed_steps(prepare(content, style, recipe=recipe, **options), recipe)
    threads = recipe.threads if recipe is not None else None
    return steps if threads is None else with_threads(steps, threads)


def stylize(
    content: object, style: object = None, *, recipe: object = None, **options: Any
) -> np.ndarray:
    """Run to completion and return the stylised image (or stack) in the content's layout."""
    recipe = _parsed(recipe)
    run = prepare(content, style, recipe=recipe, **options)
    with torch_threads(recipe.threads if recipe is not None else None):
        return run_to_end(run, replayed_steps(run, recipe)).image


class Collected:
    """A run's result as its steps arrive: every plane in the content's layout, placed
    where it belongs (the newest preview of a plane until its last step)."""

    def __init__(self, run: Run) -> None:
        self._fill = run.rendering.fill
        self.image: np.ndarray = run.rendering.empty()
        self.last: Step | None = None
        self.written = False
        """Whether any plane (or preview) has arrived."""

    def take(self, step: Step) -> None:
        self.last = step
        if step.image is not None:
            self.image = place(self.image, step.index, step.image, self._fill)
            self.written = True


def run_to_end(
    run: Run,
    steps: Iterable[Step] | None = None,
    *,
    on_step: Callable[[Step], None] | None = None,
    into: Collected | None = None,
) -> Collected:
    """Drive ``run`` (its ``steps``, by default ``run.steps()``) to its end, collecting the
    result; ``on_step`` sees every step first. Every consumer that wants the whole result
    (``stylize``, the CLI, batch items, Dask planes) goes through here; ``into`` keeps what
    arrived reachable when the caller is interrupted."""
    collected = into if into is not None else Collected(run)
    for step in run.steps() if steps is None else steps:
        if on_step is not None:
            on_step(step)
        collected.take(step)
    return collected


def replayed_steps(run: Run, recipe: Recipe | None) -> Iterator[Step]:
    """The run's steps, steered as the recipe's run was (weights sent, continued)."""
    if recipe is None or not recipe.steering or not run.steerable:
        return run.steps()
    return steered(run, recipe.steering)


def _parsed(recipe: object) -> Recipe | None:
    return None if recipe is None else parse_recipe(recipe)


def with_threads(steps: Iterator[Step], threads: int) -> Generator[Step, Any, None]:
    """``steps`` computed under ``threads`` torch threads; the caller's count between them."""
    sent = None
    try:
        while True:
            with torch_threads(threads):
                try:
                    step = steps.send(sent)  # type: ignore[attr-defined]
                except StopIteration:
                    return
            sent = yield step
    finally:
        steps.close()  # type: ignore[attr-defined]
