"""The optimisation loop of one level of one plane, and the optimiser's side of it.

**The objective.** The optimiser's side of a run: the objective it calls and a closure
that never pays twice for the same point.

**The level.** One level of one plane: optimiser iterations streamed as :class:`Step`s.

The consumer talks back through the generator's ``send``: :data:`STOP` ends the
run with the best image so far, and a dict of weights (``content_weight``,
``style_weight``, ``tv_weight``) re-weighs the loss from the next iteration on,
which is how the widget lets a user steer a run while watching it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from . import devices
from .images import Plane
from .losses import StyleTransferLoss
from .options import LIVE_WEIGHTS, Options, check_weights
from .step import STOP, Step
from .vgg import VGGFeatures


class Cancelled(Exception):
    """Raised inside an optimiser step when the run has been asked to stop."""


_MAX_LINE_SEARCH = 20
"""Function evaluations one L-BFGS line search may spend; usually it needs one."""


def make_optimizer(image: torch.Tensor, options: Options) -> torch.optim.Optimizer:
    if options.optimizer == "adam":
        return torch.optim.Adam([image], lr=options.lr)
    # One L-BFGS iteration per step() call: the optimiser keeps its curvature
    # history between calls, so this streams without changing the algorithm.
    # The strong-Wolfe line search keeps the quartic Gram objective from
    # diverging; ReusingClosure removes the evaluation it would otherwise repeat.
    return torch.optim.LBFGS(
        [image],
        lr=options.lr,
        max_iter=1,
        max_eval=1 + _MAX_LINE_SEARCH,  # the default, 5/4 of max_iter, leaves it none
        history_size=options.lbfgs_history,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )


class Objective:
    """Loss and gradient at the current image; remembers the best image evaluated."""

    def __init__(
        self,
        image: torch.Tensor,
        extractor: VGGFeatures,
        loss_fn: StyleTransferLoss,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str,
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        self.stop_requested = stop_requested
        self.image, self.extractor, self.loss_fn = image, extractor, loss_fn
        self.optimizer, self.device, self.precision = optimizer, device, precision
        # Losses are means, so pixel gradients are tiny; torch's L-BFGS ignores
        # curvature pairs below an absolute 1e-10, so it minimises the pixel sum.
        lbfgs = isinstance(optimizer, torch.optim.LBFGS)
        self.scale = float(image.numel()) if lbfgs else 1.0
        self.best_total = float("inf")
        self.best_image = image.detach().clone()
        self.best_losses: dict[str, float] = {}

    def __call__(self) -> tuple[torch.Tensor, dict[str, float]]:
        # A line search may evaluate up to 21 times in one step: checking here bounds
        # the wait for Cancel to one evaluation instead of one whole step.
        if self.stop_requested():
            raise Cancelled
        self.optimizer.zero_grad(set_to_none=True)
        with devices.autocast(self.device, self.precision):
            features = self.extractor(self.image)
        terms = self.loss_fn(features, self.image)
        objective = terms["total"] * self.scale
        objective.backward()
        values = dict(zip(terms, torch.stack(list(terms.values())).tolist(), strict=True))
        if values["total"] < self.best_total:
            self.best_total, self.best_losses = values["total"], values
            self.best_image = self.image.detach().clone()
        return objective.detach(), values


class ReusingClosure:
    """An optimiser closure that answers a repeated evaluation from memory.

    With ``max_iter=1`` each ``LBFGS.step`` starts by evaluating the point that the
    previous step's line search has just evaluated. Recomputing it would double
    the cost of every iteration, so the last point, loss and gradient are kept and
    reused when the parameter holds exactly the same values again. ``losses``
    are those of the iterate a step starts from, not of line-search trial points.
    """

    def __init__(self, image: torch.Tensor, evaluate) -> None:
        self.image = image
        self.evaluate = evaluate
        self.evaluations = 0
        self.losses: dict[str, float] = {}
        self._point: torch.Tensor | None = None
        self._grad: torch.Tensor | None = None
        self._loss: torch.Tensor | None = None
        self._values: dict[str, float] = {}
        self._first_call = True

    def begin_step(self) -> None:
        self._first_call = True

    def forget(self) -> None:
        """Drop the remembered point: the objective itself has changed (new weights)."""
        self._point = self._grad = self._loss = None

    def __call__(self) -> torch.Tensor:
        image = self.image
        if self._point is not None and torch.equal(self._point, image.detach()):
            image.grad = self._grad.clone()
        else:
            self._loss, self._values = self.evaluate()
            self.evaluations += 1
            self._point = image.detach().clone()
            self._grad = image.grad.detach().clone()
        if self._first_call:
            self.losses, self._first_call = self._values, False
        return self._loss


class EarlyStop:
    """Stop a plane once the total loss has moved by less than ``tol`` (relative)
    ``patience`` iterations in a row; never when ``tol`` is None.

    The losses compared are those each iteration starts from, so a run still
    improving by more than ``tol`` per iteration is never stopped.
    """

    def __init__(self, tol: float | None, patience: int) -> None:
        self.tol, self.patience = tol, patience
        self.calm = 0
        self.previous: float | None = None

    def settled(self, losses: dict[str, float]) -> bool:
        total = losses.get("total")
        if self.tol is None or total is None:
            return False
        previous, self.previous = self.previous, total
        if previous is not None:
            change = abs(previous - total) / max(abs(previous), 1e-12)
            self.calm = self.calm + 1 if change < self.tol else 0
        return self.calm >= self.patience


LONG_RUN = 60.0
"""Seconds from which a run is worth a word on how long it takes and how to go faster."""
SMALLER_SIZES = (512, 384, 256, 192, 128)


def duration(seconds: float) -> str:
    """``45 s``, ``4 min 10 s``, ``1 h 5 min``: an estimate, rounded for reading."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return (
            f"{minutes} min {rest // 10 * 10} s"
            if minutes < 10 and rest >= 10
            else f"{minutes} min"
        )
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min"


def long_run_note(remaining: float, size: int, device: str) -> str | None:
    """What to tell a user before a long run: its length, and a smaller size's (the cost
    of an iteration grows with the pixels); None for a short run."""
    if remaining < LONG_RUN:
        return None
    note = f"this run will take about {duration(remaining)} ({size} px on {device})"
    smaller = next((s for s in SMALLER_SIZES if s <= 0.75 * size), None)
    if smaller is not None:
        faster = remaining * (smaller / size) ** 2
        note += f"; size='{smaller}' would take about {duration(faster)}"
    if device == "cpu":
        note += ", a CUDA GPU seconds"
    return note


class Pace:
    """Seconds left in a run: how fast the level in progress goes, times the work left.

    The work is iterations × pixels per level (an L-BFGS iteration costs about the
    same per pixel at every size), listed in run order: the first plane's levels,
    coarse to fine, then each later plane at full size.
    """

    def __init__(self, work: list[tuple[int, int]]) -> None:
        self.work = work
        self.part = -1
        self.first_done: float | None = None

    def next_level(self) -> None:
        self.part += 1
        self.first_done = None

    def remaining(self, done: int) -> float | None:
        """Seconds left after ``done`` iterations of the current level; None until an
        iteration after the first (which also computes targets and warms up) is timed."""
        now = time.perf_counter()
        if done == 1:
            self.first_done = now
        if done < 2 or self.first_done is None or not 0 <= self.part < len(self.work):
            return None
        iterations, pixels = self.work[self.part]
        per_unit = (now - self.first_done) / ((done - 1) * pixels)
        later = sum(n * p for n, p in self.work[self.part + 1 :])
        left = max(0, iterations - done) * pixels + later
        return left * per_unit


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
    pace: Pace | None = None

    @property
    def last_level(self) -> bool:
        return self.level == self.levels - 1


class LiveWeights:
    """Loss weights a user sent into a running optimisation: they hold for the rest of
    the run (every later level and plane, and a continuation), and the first step whose
    losses use them says so (``Step.reweighted``)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        """Every weight changed so far, as ``Options`` names it."""
        self._unreported: dict[str, float] = {}

    def change(self, command: Mapping[str, Any], report_later: bool) -> dict[str, float]:
        """Validate and keep ``command``'s weights; ``report_later`` when the level has
        just ended, so the next level's first step reports them."""
        weights = check_weights(command)
        self.current.update(weights)
        if report_later:
            self._unreported.update(weights)
        return weights

    def take_unreported(self) -> dict[str, float]:
        """The changes no step has reported yet (for a level's first step)."""
        taken, self._unreported = self._unreported, {}
        return taken


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
        live: LiveWeights,
    ) -> None:
        self.options = options
        self.extractor, self.loss_fn, self.device, self.precision = objective_parts
        self.render = render
        self.stop_requested = stop_requested
        self.live = live
        """The run's: a change holds for later levels and planes too."""
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
        reweighted = self.live.take_unreported()

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
                remaining=where.pace.remaining(iteration) if where.pace and not final else None,
            )

        early_stop = EarlyStop(opts.early_stop_tol, opts.early_stop_patience)
        self._apply(self.live.current)
        if where.pace is not None:
            where.pace.next_level()
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
            if isinstance(command, Mapping) and done:  # the next level uses and reports them
                self.live.change(command, report_later=True)
            elif isinstance(command, Mapping):
                reweighted = self._reweigh(command, objective, closure, optimizer)
            if done:
                break
        self.result = result(final=True)
        return True

    def _reweigh(self, command, objective, closure, optimizer) -> dict[str, float]:
        """New weights from the next iteration on; the step that uses them says so."""
        weights = self.live.change(command, report_later=False)
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
