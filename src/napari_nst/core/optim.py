"""The optimiser's side of a run: the objective it calls and a closure that never
pays twice for the same point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import devices
from .features import VGGFeatures
from .losses import StyleTransferLoss
from .options import Options


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
