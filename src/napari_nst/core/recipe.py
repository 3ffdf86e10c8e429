"""Recipes: a run's options as JSON data, so a result can be made again.

A recipe is a plain ``{"option": value}`` object or a whole run record (the
output layer's ``metadata["napari_nst"]``, a ``--log-json`` file, a batch
sidecar), whose ``params`` are the options. Recipes travel between people and
machines, so they are only ever parsed as JSON and validated like any other
options: nothing in one is evaluated, imported or unpickled.

Bit-for-bit reproduction needs more than the options: on the CPU the number of
torch threads changes the sums inside convolutions and L-BFGS (a 64 px run
differs in a few dozen pixels between 1 and 2 threads), so a record carries
``threads`` and a replay uses it unless told otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .options import LEGACY_LOSS_NORM, PRESETS, Options, style_weight_for
from .replay import Steering

LEGACY_GATYS_SIZE = 512
LEGACY_PYRAMID_ABOVE = 512

NOT_REPLAYED = frozenset({"preview_every"})
"""Record params that describe how a run was watched, not what it made (previews are
copies of the iterate: their cadence never changes a pixel). Dropped on replay."""
MAX_THREADS = 1024


class RecipeError(ValueError):
    """A recipe that is not JSON, not an object, or holds invalid options."""


@dataclass(frozen=True)
class Recipe:
    """Validated options, plus what of the original run a replay should match."""

    options: dict[str, Any]
    threads: int | None = None
    ran_with: dict[str, Any] = field(default_factory=dict)
    """The record's device, precision, weights and checkpoint hashes (empty for a plain dict)."""
    steering: Steering = field(default_factory=Steering)
    """Weights the user changed mid-run and continuations, replayed at the same iterations."""

    def merged(self, explicit: dict[str, Any]) -> dict[str, Any]:
        """The recipe's options with ``explicit`` ones on top.

        Options that stand for others are resolved so that what was given explicitly
        wins: a preset replaces the recipe's values it sets, ``style_strength`` and
        ``style_weight`` replace each other, and luminance transfer replaces the
        recipe's ``luminance_only``.
        """
        base = dict(self.options)
        preset = explicit.get("preset")
        if preset in PRESETS:
            for key in PRESETS[preset]:
                base.pop(key, None)
            if "style_weight" in PRESETS[preset]:
                base.pop("style_strength", None)
        if "style_strength" in explicit:
            base.pop("style_weight", None)
        if "style_weight" in explicit:
            base.pop("style_strength", None)
        if explicit.get("preserve_color") == "luminance":
            base.pop("luminance_only", None)
        return base | explicit


def read_recipe(path: str | os.PathLike) -> Recipe:
    """Parse and validate the recipe in a JSON file; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError
        raise RecipeError(f"recipe {path} is not valid JSON: {exc}") from None
    return parse_recipe(data, f"recipe {path}")


def parse_recipe(data: object, name: str = "recipe") -> Recipe:
    """A recipe from JSON-like data: a run record (its ``params``) or a dict of options
    (or the path of a JSON file holding one)."""
    if isinstance(data, Recipe):
        return data
    if isinstance(data, str | os.PathLike):
        return read_recipe(data)
    if not isinstance(data, dict):
        raise RecipeError(f"{name} must be a JSON object of options (or a run record)")
    record = isinstance(data.get("params"), dict)
    options = dict(data["params"] if record else data)
    if record and "loss_norm" not in options:
        options = as_before_normalisation(options)
    if record and options.get("style_strength") is not None:
        # A record holds both the strength asked for and the style weight it became:
        # the strength (for the slider) while it still becomes that weight, else the
        # weight the run had (strengths of earlier versions stood for other weights).
        _strength_or_weight(options)
    try:
        Options.from_kwargs(options)
    except ValueError as exc:
        raise RecipeError(f"{name}: {exc}") from None
    for key in NOT_REPLAYED:
        options.pop(key, None)
    if not record:
        return Recipe(options)
    threads = data.get("threads")
    if threads is not None and (type(threads) is not int or not 1 <= threads <= MAX_THREADS):
        raise RecipeError(f"{name}: threads must be a whole number from 1 to {MAX_THREADS}")
    try:
        steering = Steering.from_record(data, name)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    return Recipe(options, threads, _ran_with(data), steering)


def _strength_or_weight(options: dict[str, Any]) -> None:
    strength, weight = options["style_strength"], options.get("style_weight")
    if weight is None:
        return
    try:
        same = style_weight_for(strength) == weight
    except TypeError:  # not a number: validation names it
        same = True
    options.pop("style_weight" if same else "style_strength")


def as_before_normalisation(params: dict[str, Any]) -> dict[str, Any]:
    """A record's params from before ``loss_norm`` (napari-nst 0.1), with the defaults of
    that time spelled out, so it replays as it ran: raw MSE losses, 512 px when no size
    was given, coarse-to-fine only above 512 px, and the style weight the strength
    became (strengths were relative to another default style weight)."""
    options = dict(params, loss_norm=LEGACY_LOSS_NORM)
    if options.get("size") is None and options.get("method", "gatys") == "gatys":
        options["size"] = LEGACY_GATYS_SIZE
    if options.get("pyramid", "auto") == "auto":
        size = options.get("size") or LEGACY_GATYS_SIZE
        options["pyramid"] = "on" if size > LEGACY_PYRAMID_ABOVE else "off"
    if options.get("style_strength") is not None and options.get("style_weight") is not None:
        options.pop("style_strength")
    return options


def _ran_with(record: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in ("device", "precision"):
        if isinstance(record.get(key), str):
            found[key] = record[key]
    for key in ("weights", "checkpoint"):
        section = record.get(key)
        if isinstance(section, dict) and isinstance(section.get("sha256"), str):
            found[f"{key}_sha256"] = section["sha256"]
    return found


def differences(recipe: Recipe, record: dict[str, Any]) -> list[str]:
    """How a replay's record differs from the recipe's run in what changes the numbers."""
    notes = []
    now = _ran_with(record)
    for key, then in recipe.ran_with.items():
        if key in now and now[key] != then:
            notes.append(f"{key.replace('_', ' ')} was {then}, now {now[key]}")
    if recipe.threads is not None and record.get("threads") not in (None, recipe.threads):
        notes.append(f"threads was {recipe.threads}, now {record['threads']}")
    return notes
