"""Gatys et al. neural style transfer as a generator of :class:`Step`s.

One engine for every consumer: the napari widget runs :meth:`StyleTransfer.steps`
in a ``thread_worker``, the CLI drives it with a progress bar, ``stylize`` just
exhausts it. Validation happens when the run is prepared, before any weights are
loaded, so a bad option costs milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from . import devices, imaging
from .features import VGGFeatures
from .losses import ContentLoss, StyleLoss, StyleTransferLoss
from .options import Options
from .step import STOP, Step
from .weights import VGGWeights, check_covers, load_vgg19

_MAX_LINE_SEARCH = 20
"""Function evaluations one L-BFGS line search may spend; usually it needs one."""


class StyleTransfer:
    """A validated run: inputs converted, device chosen, nothing heavy done yet."""

    def __init__(self, content: object, style: object, options: Options) -> None:
        if options.method != "gatys":
            raise ValueError(
                f"method {options.method!r} is not available in this version; use 'gatys'"
            )
        self.options = options
        self.content, self.layout = imaging.to_unit_rgb(
            content, options.contrast_limits, role="content image"
        )
        self.style, _ = imaging.to_unit_rgb(style, role="style image")
        self.shape = imaging.working_shape(self.layout.shape, options.size)
        self.style_shape = imaging.working_shape(self.style.shape[:2], options.size)
        self.device = devices.resolve_device(options.device)
        self.precision = devices.resolve_precision(options.precision, self.device)
        self.weights: VGGWeights | None = None

    def info(self) -> dict[str, Any]:
        """Where and how the run executes, for run records (weights once loaded)."""
        return {
            "device": str(self.device),
            "precision": self.precision,
            "working_size": list(self.shape),
            "weights": self.weights.describe() if self.weights else {"source": None},
        }

    def steps(self) -> Iterator[Step]:
        """Optimise and stream progress; ``send(STOP)`` ends with the best image so far."""
        try:
            yield from self._optimise()
        finally:
            # The inner generator's frame, and with it every tensor, is gone by now.
            devices.release(self.device)

    def _optimise(self) -> Iterator[Step]:
        opts = self.options
        start = time.perf_counter()
        self.weights = load_vgg19(opts.weights, seed=opts.seed)
        check_covers(self.weights, opts.content_layers + opts.style_layers)
        devices.configure(self.device)
        content = imaging.to_tensor(self.content, self.shape, self.device)
        loss_fn, extractor = self._build(content)
        image = self._initial_image(content)
        optimizer = self._optimizer(image)
        objective = _Objective(image, extractor, loss_fn, optimizer, self.device, self.precision)
        closure = _ReusingClosure(image, objective)

        def step(iteration: int, current: bool, done: bool, cancelled: bool = False) -> Step:
            preview = done or iteration % opts.preview_every == 0
            shown = image if current else objective.best_image
            return Step(
                iteration=iteration,
                total=opts.iterations,
                losses=closure.losses if current else objective.best_losses,
                elapsed=time.perf_counter() - start,
                image=self._output(shown) if preview else None,
                done=done,
                cancelled=cancelled,
                evaluations=closure.evaluations,
            )

        for iteration in range(1, opts.iterations + 1):
            closure.begin_step()
            with torch.inference_mode(False), torch.enable_grad():
                optimizer.step(closure)
            if opts.optimizer == "adam":
                with torch.no_grad():
                    image.clamp_(0, 1)
            done = iteration == opts.iterations
            command = yield step(iteration, current=not done, done=done)
            if command == STOP and not done:
                yield step(iteration, current=False, done=True, cancelled=True)
                return

    def _build(self, content: torch.Tensor) -> tuple[StyleTransferLoss, VGGFeatures]:
        opts = self.options
        assert self.weights is not None
        extractor = VGGFeatures(
            self.weights.convs,
            opts.content_layers + opts.style_layers,
            self.weights.preprocess,
            opts.pooling,
        )
        extractor = extractor.to(self.device, memory_format=torch.channels_last)
        style = imaging.to_tensor(self.style, self.style_shape, self.device)
        with torch.no_grad(), devices.autocast(self.device, self.precision):
            content_features = extractor(content)
            style_features = extractor(style)
        loss_fn = StyleTransferLoss(
            content={name: ContentLoss(content_features[name]) for name in opts.content_layers},
            style={
                name: (StyleLoss(style_features[name]), weight)
                for name, weight in zip(opts.style_layers, opts.style_layer_weights, strict=True)
            },
            content_weight=opts.content_weight,
            style_weight=opts.style_weight,
            tv_weight=opts.tv_weight,
        )
        return loss_fn, extractor

    def _initial_image(self, content: torch.Tensor) -> torch.Tensor:
        """Content, uniform noise, or a blend of the two (``noise_ratio`` of noise).

        The noise is drawn on the CPU so a seed gives the same start on any device.
        """
        opts = self.options
        generator = torch.Generator().manual_seed(opts.seed)
        noise = torch.rand(content.shape, generator=generator).to(content.device)
        ratio = {"content": 0.0, "noise": 1.0, "blend": opts.noise_ratio}[opts.init]
        image = (1 - ratio) * content + ratio * noise
        return image.contiguous().requires_grad_(True)

    def _optimizer(self, image: torch.Tensor) -> torch.optim.Optimizer:
        opts = self.options
        if opts.optimizer == "adam":
            return torch.optim.Adam([image], lr=opts.lr)
        # One L-BFGS iteration per step() call: the optimiser keeps its curvature
        # history between calls, so this streams without changing the algorithm.
        # The strong-Wolfe line search keeps the quartic Gram objective from
        # diverging; _ReusingClosure removes the evaluation it would otherwise repeat.
        return torch.optim.LBFGS(
            [image],
            lr=opts.lr,
            max_iter=1,
            max_eval=1 + _MAX_LINE_SEARCH,  # the default, 5/4 of max_iter, leaves it none
            history_size=opts.lbfgs_history,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )

    def _output(self, image: torch.Tensor) -> np.ndarray:
        return imaging.to_output(image, self.layout)


class _Objective:
    """Loss and gradient at the current image; remembers the best image evaluated."""

    def __init__(
        self,
        image: torch.Tensor,
        extractor: VGGFeatures,
        loss_fn: StyleTransferLoss,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str,
    ) -> None:
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


class _ReusingClosure:
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


def prepare(content: object, style: object, **options: Any) -> StyleTransfer:
    """Validate inputs and options; raises ``ValueError`` with a readable message."""
    return StyleTransfer(content, style, Options.from_kwargs(options))


def iter_stylize(content: object, style: object, **options: Any) -> Iterator[Step]:
    """Stream a run as :class:`Step`s; see the README for every option.

    Inputs and options are validated immediately (not on first ``next``), so
    errors surface where the call is made.
    """
    return prepare(content, style, **options).steps()


def stylize(content: object, style: object, **options: Any) -> np.ndarray:
    """Run to completion and return the stylised image in the content's layout."""
    result = None
    for step in iter_stylize(content, style, **options):
        result = step.image if step.done else result
    assert result is not None
    return result
