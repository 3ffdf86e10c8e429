"""One level of one plane: optimiser iterations streamed as :class:`Step`s.

The consumer talks back through the generator's ``send``: :data:`STOP` ends the
run with the best image so far, and a dict of weights (``content_weight``,
``style_weight``, ``tv_weight``) re-weighs the loss from the next iteration on,
which is how the widget lets a user steer a run while watching it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .imaging import Plane
from .losses import StyleTransferLoss
from .optim import Cancelled, EarlyStop, Objective, ReusingClosure, make_optimizer
from .options import Options
from .step import STOP, Step

LIVE_WEIGHTS = {"content_weight": "content", "style_weight": "style", "tv_weight": "tv"}
"""Weights a running optimisation accepts through ``send``, and their loss terms."""


def check_weights(command: Mapping[str, Any]) -> dict[str, float]:
    """A ``send``-ed weight change, validated; raises ``ValueError`` naming the problem."""
    unknown = sorted(set(command) - set(LIVE_WEIGHTS))
    if unknown:
        raise ValueError(
            f"a running optimisation can change {', '.join(LIVE_WEIGHTS)}; not {unknown}"
        )
    checked = {}
    for name, value in command.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number; got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number ≥ 0; got {value}")
        checked[name] = float(value)
    return checked


@dataclass(frozen=True)
class Position:
    """Where a level sits in the run, for the numbers its steps report."""

    index: tuple[int, ...]
    plane: int
    planes: int
    level: int
    levels: int
    base: int
    """Iterations of the run before this level's first."""
    total: int
    start: float
    evaluations: int
    """Loss evaluations of the run before this level."""

    @property
    def last_level(self) -> bool:
        return self.level == self.levels - 1


class LevelRun:
    """Optimise ``start`` for ``iterations``; the result is :attr:`result` when done.

    ``result`` is the best image evaluated (or the moving average, with ``ema``),
    also when the run was stopped, so "Cancel" and "Continue" keep the work.
    """

    def __init__(
        self,
        options: Options,
        objective_parts: tuple[Any, StyleTransferLoss, torch.device, str],
        render: Callable[[torch.Tensor, Plane], Any],
        stop_requested: Callable[[], bool],
        live_weights: dict[str, float],
        unreported: dict[str, float],
    ) -> None:
        self.options = options
        self.extractor, self.loss_fn, self.device, self.precision = objective_parts
        self.render = render
        self.stop_requested = stop_requested
        self.live_weights = live_weights
        """Shared with the job: a change holds for later levels and planes too."""
        self.unreported = unreported
        """A change sent on a level's last step, for the next level's first step to report."""
        self.result: torch.Tensor | None = None
        self.evaluations = 0
        self.last = 0
        """The level's last iteration streamed (its own count, from 1)."""

    def steps(
        self, start: torch.Tensor, plane: Plane, where: Position, iterations: int
    ) -> Iterator[Step]:
        """Returns True when the level finished, False when the run was stopped."""
        opts = self.options
        image = start.detach().clone().contiguous().requires_grad_(True)
        optimizer = make_optimizer(image, opts)
        objective = Objective(
            image, self.extractor, self.loss_fn, optimizer, self.device, self.precision,
            self.stop_requested,
        )  # fmt: skip
        closure = ReusingClosure(image, objective)
        final_plane = where.plane == where.planes - 1 and where.last_level
        # crowsonkb's smoothing: show and return a moving average of the iterates.
        average = image.detach().clone() if opts.ema else None
        reweighted = dict(self.unreported)
        self.unreported.clear()

        def result(final: bool) -> torch.Tensor:
            if average is not None:
                return average
            return objective.best_image if final else image

        def step(iteration: int, done: bool, cancelled: bool = False, converged: bool = False):
            final = done or cancelled  # a level's result is the best image it evaluated
            preview = final or iteration % opts.preview_every == 0
            self.evaluations, self.last = closure.evaluations, iteration
            return Step(
                iteration=where.base + iteration,
                total=where.total,
                losses=objective.best_losses if final else closure.losses,
                elapsed=time.perf_counter() - where.start,
                image=self.render(result(final), plane) if preview else None,
                done=(done and final_plane) or cancelled,
                cancelled=cancelled,
                evaluations=where.evaluations + closure.evaluations,
                index=where.index,
                plane=where.plane,
                planes=where.planes,
                plane_done=done and where.last_level,
                converged=converged,
                level=where.level,
                levels=where.levels,
                reweighted=reweighted if not cancelled else {},
            )

        early_stop = EarlyStop(opts.early_stop_tol, opts.early_stop_patience)
        self._apply(self.live_weights)
        for iteration in range(1, iterations + 1):
            closure.begin_step()
            try:
                with torch.inference_mode(False), torch.enable_grad():
                    optimizer.step(closure)
            except Cancelled:  # mid-step: the best image evaluated so far stands
                self.result = result(final=True)
                yield step(iteration - 1, done=False, cancelled=True)
                return False
            if opts.optimizer == "adam":
                with torch.no_grad():
                    image.clamp_(0, 1)
            if average is not None:
                average.lerp_(image.detach(), 1 - opts.ema)
            converged = iteration < iterations and early_stop.settled(closure.losses)
            done = converged or iteration == iterations
            command = yield step(iteration, done, converged=converged)
            reweighted = {}
            if command == STOP and not (done and final_plane):
                # A plane that has just finished counts as finished in the record.
                self.result = result(final=True)
                yield step(iteration, done=done and where.last_level, cancelled=True)
                return False
            if isinstance(command, Mapping) and done:
                weights = check_weights(command)
                self.live_weights.update(weights)
                self.unreported.update(weights)
            elif isinstance(command, Mapping):
                reweighted = self._reweigh(command, objective, closure, optimizer)
            if done:
                break
        self.result = result(final=True)
        return True

    def _reweigh(self, command, objective, closure, optimizer) -> dict[str, float]:
        """New weights from the next iteration on; the step that uses them says so."""
        weights = check_weights(command)
        self.live_weights.update(weights)
        self._apply(weights)
        # The objective changed: its cached point, best image and curvature history
        # describe another function. The image itself is where the run continues.
        objective.best_total = float("inf")
        closure.forget()
        optimizer.state.clear()
        return weights

    def _apply(self, weights: Mapping[str, float]) -> None:
        for name, value in weights.items():
            self.loss_fn.weights[LIVE_WEIGHTS[name]] = value
