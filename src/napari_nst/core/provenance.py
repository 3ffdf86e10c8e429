"""Provenance: the run record, recipes made from it, and replaying how a run was steered.

**The run record** is one dict for the output layer's metadata and the CLI's JSON log.
Everything needed to understand (and later re-run) a result travels with it:
parameters, device and precision, torch threads, the CPU, VGG19 source and hash,
per-step losses. A record is itself a recipe.

**A recipe** is a plain ``{"option": value}`` object or a whole run record (the output
layer's ``metadata["napari_nst"]``, a ``--log-json`` file, a batch sidecar), whose
``params`` are the options. Recipes travel between people and machines, so they are
only ever parsed as JSON and validated like any other options: nothing in one is
evaluated, imported or unpickled. Bit-for-bit reproduction needs more than the
options: on the CPU the number of torch threads changes the sums inside convolutions
and L-BFGS (a 64 px run differs in a few dozen pixels between 1 and 2 threads), so a
record carries ``threads`` and a replay uses it unless told otherwise. It also names
its ``cpu``: another maker's CPU takes other code paths in the maths libraries (MKL,
oneDNN), so the same record replayed on an Intel Xeon and an AMD EPYC differs in the
last bits (a 64 px test record: at most 2 grey levels, in 2 % of the pixels); a
replay's note says so.

**Steering.** A record's ``params`` only say how a run started. A user who changed the
weights while watching, or pressed Continue, made a different image, and the record
says exactly when: ``weight_changes`` holds the first iteration computed with each new
set of weights, ``continued`` the iteration after which each continuation began.
Sending the same weights after the same steps, and continuing after the same
iterations, makes the same image again (same device and threads).
"""

from __future__ import annotations

import functools
import json
import os
import platform
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .options import (
    LEGACY_LOSS_NORM,
    PRESETS,
    Options,
    check_weights,
    current_names,
    style_weight_for,
)
from .step import Run, Step

STATUSES = ("running", "done", "cancelled", "failed")


def versions() -> dict[str, str]:
    """Versions of the packages that determine a result."""
    found = {"python": platform.python_version()}
    for package in ("napari-nst", "torch", "torchvision", "numpy", "scikit-image", "napari"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


@functools.cache
def cpu_now() -> str:
    """This CPU as results depend on it: its model and the vector instructions torch
    uses (``"AMD EPYC 7B13 (AVX2)"``)."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"


def threads_now() -> int:
    """torch's intra-op threads, as a run started now will use them (process-wide).

    CPU results depend on it: reductions are split across threads.
    """
    import torch

    return torch.get_num_threads()


class RunRecord:
    """Mutable while a run streams; ``to_dict`` gives a JSON-ready snapshot."""

    def __init__(self, params: dict[str, Any], sources: dict[str, Any] | None = None) -> None:
        self.params = params
        self.sources = sources or {}
        self.threads = threads_now()
        self.cpu = cpu_now()
        self.status = "running"
        self.iteration = 0
        self.losses: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self.planes = {"done": 0, "total": 1}
        self.message = ""
        self.early_stops: list[dict[str, int]] = []
        self.weight_changes: list[dict[str, float]] = []
        self.continued: list[dict[str, int]] = []
        self._versions = versions()

    def update(self, step: Step) -> None:
        if self.status in ("done", "cancelled") and step.iteration > self.iteration:
            self.reopen(step.total - self.iteration)  # a continued run's first step
        self.iteration = step.iteration
        self.planes = {"done": step.plane + int(step.plane_done), "total": step.planes}
        self.losses = dict(step.losses)
        if step.reweighted:  # the user steered the run: these weights hold from here
            self.weight_changes.append({"iteration": step.iteration, **step.reweighted})
        if step.converged:  # early stopping ended this plane
            self.early_stops.append({"plane": step.plane, "iteration": step.iteration})
        if not step.cancelled:
            entry = {"iteration": step.iteration, "losses": self.losses, "elapsed": step.elapsed}
            if step.planes > 1:
                entry["plane"] = step.plane
            self.history.append(entry)
        if step.done:
            self.status = "cancelled" if step.cancelled else "done"

    def reopen(self, iterations: int, size: int | None = None) -> None:
        """A finished run goes on for ``iterations`` more ("Continue"; at working size
        ``size`` for a full-size render): the record runs again, and says where the
        continuation began, so that a replay can too."""
        entry = {"after": self.iteration, "iterations": iterations}
        self.continued.append(entry | ({"size": size} if size else {}))
        self.status, self.message = "running", ""

    def finish(self, status: str, message: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {status!r}")
        self.status = status
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        record = {
            "params": self.params,
            "status": self.status,
            "iteration": self.iteration,
            "losses": self.losses,
            "history": self.history,
            "planes": self.planes,
            "threads": self.threads,
            "cpu": self.cpu,
            **self.info,
            "sources": self.sources,
            "versions": self._versions,
        }
        if self.weight_changes:
            record["weight_changes"] = self.weight_changes
        if self.continued:
            record["continued"] = self.continued
        if self.early_stops:
            record["early_stop"] = self.early_stops
        if self.message:
            record["message"] = self.message
        return record


@dataclass(frozen=True)
class Steering:
    """What a record says was done to a run while it ran (empty for a plain run)."""

    weight_changes: tuple[tuple[int, dict[str, float]], ...] = ()
    continued: tuple[tuple[int, int, int | None], ...] = ()
    """(iteration after which it began, iterations, working size or None) per continuation."""

    def __bool__(self) -> bool:
        return bool(self.weight_changes or self.continued)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], name: str = "recipe") -> Steering:
        """Validated; raises ``ValueError`` naming the bad entry."""
        changes = []
        for entry in _entries(record, "weight_changes", name):
            weights = {key: value for key, value in entry.items() if key != "iteration"}
            changes.append((_count(entry.get("iteration"), f"{name}: weight_changes"),
                            check_weights(weights)))  # fmt: skip
        continued = [
            (
                _count(entry.get("after"), f"{name}: continued", minimum=0),
                _count(entry.get("iterations"), f"{name}: continued"),
                None if entry.get("size") is None else _size(entry["size"], name),
            )
            for entry in _entries(record, "continued", name)
        ]
        return cls(tuple(changes), tuple(continued))

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight_changes": [{"iteration": i, **w} for i, w in self.weight_changes],
            "continued": [
                {"after": a, "iterations": n} | ({"size": s} if s else {})
                for a, n, s in self.continued
            ],
        }


def steered(run: Run, steering: Steering) -> Iterator[Step]:
    """``run``'s steps, with the recorded weights sent and continuations run.

    A weight change recorded at iteration ``k`` is sent when step ``k - 1``
    arrives, as the widget's change reached the engine. A consumer's own ``send``
    (``STOP``) takes precedence and ends the replay.
    """
    changes = {iteration - 1: weights for iteration, weights in steering.weight_changes}
    for segment in [None, *steering.continued]:
        if segment is not None:
            after, iterations, size = segment
            if run.last_iteration != after:  # the replay ended elsewhere: nothing to continue
                return
            run = run.continued(iterations, size)
        steps = run.steps()
        command, stopped = None, False
        while True:
            try:
                step = steps.send(command)
            except StopIteration:
                break
            sent = yield step
            stopped = stopped or sent is not None
            command = sent if sent is not None else changes.get(step.iteration)
        if stopped:  # the consumer ended it: no further continuation
            return


def _entries(record: Mapping[str, Any], key: str, name: str) -> Sequence[Mapping[str, Any]]:
    entries = record.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ValueError(f"{name}: {key} must be a list of objects")
    return entries


def _size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 32 <= value <= 16384:
        raise ValueError(f"{name}: continued: size must be a whole number of px; got {value!r}")
    return value


def _count(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what}: iterations must be whole numbers ≥ {minimum}; got {value!r}")
    return value


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
    """The record's device, precision, VGG19 and checkpoint hashes (empty for a plain dict)."""
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
    # Recipes are data written by earlier versions too: old option names map silently.
    options = current_names(data["params"] if record else data, warn=False)
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
    for key in ("device", "precision", "cpu"):
        if isinstance(record.get(key), str):
            found[key] = record[key]
    for key, section in (("vgg", record.get("vgg", record.get("weights"))),
                         ("checkpoint", record.get("checkpoint"))):  # fmt: skip
        if isinstance(section, dict) and isinstance(section.get("sha256"), str):
            found[f"{key}_sha256"] = section["sha256"]
    return found


def differences(recipe: Recipe, record: dict[str, Any]) -> list[str]:
    """How a replay's record differs from the recipe's run in what changes the numbers."""
    notes = []
    now = _ran_with(record)
    for key, then in recipe.ran_with.items():
        if key == "cpu" and now.get("device") != "cpu":
            continue  # a GPU run's numbers do not depend on the host
        if key in now and now[key] != then:
            notes.append(f"{key.replace('_', ' ')} was {then}, now {now[key]}")
    if recipe.threads is not None and record.get("threads") not in (None, recipe.threads):
        notes.append(f"threads was {recipe.threads}, now {record['threads']}")
    return notes
