"""The Gatys run: :class:`StyleTransfer` over a content's planes, coarse to fine.

**The run.** Gatys et al. neural style transfer as a generator of :class:`Step`s.

One engine for every consumer: the napari widget runs :meth:`StyleTransfer.steps`
in a ``thread_worker``, the CLI drives it with a progress bar, ``stylize`` just
exhausts it. Validation happens when the run is prepared, before any weights are
loaded, so a bad option costs milliseconds.

A stack is a sequence of planes sharing one loss network and one set of style
targets. Each plane after the first starts from its neighbour's result and, with
``slice_weight``, is pulled towards it, so a volume does not flicker through z.

**The pyramid.** Coarse-to-fine: the sizes a run optimises at before its own.

At a coarse size an L-BFGS iteration costs a fraction of a full-size one, and the
structures that take the longest to form at full size (large strokes, the layout
of the style across the image) form there in a few iterations. Each level starts
from the previous level's result, upsampled, so the full-size optimisation only
has the fine detail left to do (Gatys et al. 2017; crowsonkb's style-transfer-
pytorch uses the same schedule).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import devices, images, losses
from .images import Rendering, resize, working_shape
from .losses import ContentLoss, StyleTransferLoss, blend, targets_for
from .optim import LevelRun, LiveWeights, Pace, Position
from .options import Options, style_images
from .step import LocalRun, Step
from .vgg import VGG19, VGGFeatures, check_covers, load_vgg19


class StyleTransfer(LocalRun):
    """A validated run: inputs inspected, device chosen, nothing heavy done yet.

    The content is kept by reference and read one plane at a time (never written),
    so a large volume is not duplicated as float32.
    """

    pausable = True
    steerable = True
    continuable = True
    redecodable = False

    def __init__(
        self, content: object, style: object, options: Options, labels: object = None
    ) -> None:
        styles, blend_weights = style_images(style, options)
        self.device = devices.resolve_device(options.device)
        if options.size is None:  # the record says the size the run had
            options = dataclasses.replace(options, size=devices.default_size(self.device))
        self.options, self.blend_weights = options, blend_weights
        self._inputs = (content, styles, labels)
        self.layout = images.inspect(
            content, "content image", options.contrast_limits, stack=options.stack == "all"
        )
        self._content = content
        self._styles = [
            images.read_plane(s, (), images.inspect(s, _style_role(n, len(styles))))
            for n, s in enumerate(styles, start=1)
        ]
        luminance = options.luminance_only
        if luminance is None:  # gray in, gray out; colour keeps its colours unless asked
            luminance = not self.layout.colour or options.preserve_color == "luminance"
        self._regions = losses.Regions.check(
            labels, options.label_styles, self.layout.plane_shape, len(styles)
        )
        size = options.gatys_size
        self.shape = images.working_shape(self.layout.plane_shape, size, options.spacing)
        self.rendering = Rendering(
            self.layout, luminance, options.output_range,
            match_colour=options.preserve_color == "histogram" and not luminance,
            working_shape=self.shape if options.output_size == "working" else None,
        )  # fmt: skip
        try:
            self.style_shapes = [
                images.working_shape(s.unit.shape[:2], options.style_size) for s in self._styles
            ]
        except ValueError as exc:
            raise ValueError(f"style_scale {options.style_scale} is too small: {exc}") from None
        self.levels = schedule(
            self.layout.plane_shape, [s.unit.shape[:2] for s in self._styles], options
        )
        self.precision = devices.resolve_precision(options.precision, self.device)
        height, width = self.shape
        devices.check(self._bytes_at, max(self.shape), self.device, f"a {height}×{width} run")
        self.vgg: VGG19 | None = None
        self.non_finite = 0
        self._stop = threading.Event()
        self.final_images: dict[tuple[int, ...], torch.Tensor] = {}
        """Each plane's result at working size (on the CPU), for :meth:`continued`."""
        self.last_iteration = 0
        self._start_images: dict[tuple[int, ...], torch.Tensor] = {}
        self._first_iteration = 0
        self._live = LiveWeights()

    @property
    def style_shape(self) -> tuple[int, int]:
        """Working size of the (first) style image."""
        return self.style_shapes[0]

    def cancel(self) -> None:
        """Ask the run to stop from any thread; it ends within one loss evaluation.

        ``send(STOP)`` is only seen between iterations; this is also seen between
        the evaluations of a line search and between the setup stages.
        """
        self._stop.set()

    def info(self) -> dict[str, Any]:
        """Where and how the run executes, for run records (the VGG19 once loaded)."""
        levels = [level.describe() for level in self.levels] if len(self.levels) > 1 else None
        return {
            "device": str(self.device),
            "precision": self.precision,
            "working_size": list(self.shape),
            "luminance_only": self.rendering.luminance_only,
            "result": {"shape": list(self.rendering.shape), "dtype": str(self.rendering.dtype)},
            **self.rendering.resizing(self.shape),
            "non_finite_pixels": self.non_finite,
            "vgg": self.vgg.describe() if self.vgg else {"source": None},
        } | ({"pyramid": levels} if levels else {})

    def steps(self) -> Iterator[Step]:
        """Optimise and stream progress; ``send(STOP)`` ends with the best image so far.

        Running out of memory ends the run with :class:`~.devices.OutOfMemory`, its
        memory released.
        """
        height, width = self.shape
        hint = f"the working image was {height}×{width} px; try a smaller size"
        yield from devices.guard(self._optimise(), self.device, hint)

    def _bytes_at(self, size: int) -> int:
        """Estimated peak memory were the run made at working size ``size``."""
        opts = self.options
        return devices.gatys_bytes(
            images.working_shape(self.layout.plane_shape, size, opts.spacing),
            images.working_shape(
                max((s.unit.shape[:2] for s in self._styles), key=lambda hw: hw[0] * hw[1]),
                max(1, round(size * opts.style_scale)),
            ),
            1 if self.rendering.luminance_only else 3,
            opts.content_layers + opts.style_layers,
            opts.optimizer,
            opts.lbfgs_history,
            opts.pooling,
        )

    def _optimise(self) -> Iterator[Step]:
        opts = self.options
        levels = self.levels
        run = _Progress(time.perf_counter(), self._first_iteration + self._iterations_total())
        self.vgg = load_vgg19(opts.vgg, seed=opts.seed)
        check_covers(self.vgg, opts.content_layers + opts.style_layers)
        devices.configure(self.device)
        extractor = self._extractor()
        base = self._first_iteration
        if self._stop.is_set():  # cancelled while the VGG19 loaded
            yield _stopped_early(run, base)
            return
        level_losses: dict[int, StyleTransferLoss] = {}
        previous: torch.Tensor | None = None
        pace = Pace(self._work())
        for number, index in enumerate(self.layout.indices):
            if self._stop.is_set():  # between planes, or while the style targets were built
                yield _stopped_early(run, base, number, self.planes)
                return
            plane = images.read_plane(self._content, index, self.layout)
            self.non_finite += plane.non_finite
            image = self._start_images.get(index, previous)
            if image is not None:
                image = image.to(self.device)
            # Coarse-to-fine only from scratch: a neighbour's result is already coarse-fine.
            for number_of_level in range(0 if image is None else len(levels) - 1, len(levels)):
                level = levels[number_of_level]
                if number_of_level not in level_losses:
                    level_losses[number_of_level] = self._loss(extractor, level)
                loss_fn = level_losses[number_of_level]
                content = images.to_tensor(self._working(plane.unit), level.shape, self.device)
                with torch.no_grad(), devices.autocast(self.device, self.precision):
                    loss_fn.set_content(extractor(content))
                    if previous is not None and opts.slice_weight > 0:
                        loss_fn.set_reference(self._content_features(extractor, previous))
                start = self._initial_image(content) if image is None else image
                where = Position(
                    index, number, self.planes, number_of_level, len(levels), base, run.total,
                    run.start, run.evaluations, pace,
                )  # fmt: skip
                level_run = LevelRun(
                    opts, (extractor, loss_fn, self.device, self.precision), self.rendering.render,
                    self._stop.is_set, self._live,
                )  # fmt: skip
                finished = yield from level_run.steps(
                    upsample(start, level.shape), plane, where, level.iterations
                )
                run.evaluations += level_run.evaluations
                self.last_iteration = base + level_run.last
                base += level.iterations
                image = level_run.result
                if image is not None and level is levels[-1]:
                    self.final_images[index] = image.detach().to("cpu", copy=True)
                if not finished:
                    return
            previous = image

    def continued(self, iterations: int, size: int | None = None) -> StyleTransfer:
        """The same run for ``iterations`` more, each plane from this run's result.

        Numbering goes on from where this run stopped, so one record holds both;
        weights changed during this run stay changed. With ``size``, the run goes on
        at that working size, from its result upsampled: one more coarse-to-fine
        level, say up to the content's own resolution. Raises ``ValueError`` when
        this run has no result to continue from.
        """
        if not self.final_images:
            raise ValueError("there is no finished result to continue from")
        content, styles, labels = self._inputs
        options = dataclasses.replace(
            self.options,
            iterations=iterations,
            pyramid="off",
            size=size or self.options.size,
            **self._live.current,
        )
        run = StyleTransfer(content, styles, options, labels)
        run._start_images = dict(self.final_images)
        run._first_iteration = self.last_iteration
        return run

    def _work(self) -> list[tuple[int, int]]:
        """(iterations, pixels) per level run, in run order: the first plane climbs the
        pyramid, the rest (which start from a neighbour) and continued planes run at
        full size only."""
        full = self.levels[-1]
        climb = [full] if self._start_images else self.levels
        parts = [*climb, *[full] * (self.planes - 1)]
        return [(level.iterations, level.shape[0] * level.shape[1]) for level in parts]

    def _iterations_total(self) -> int:
        return sum(iterations for iterations, _ in self._work())

    def _content_features(
        self, extractor: VGGFeatures, image: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        features = extractor(image)
        return {name: features[name] for name in self.options.content_layers}

    def _working(self, unit: np.ndarray) -> np.ndarray:
        return images.working_channels(unit, self.rendering.luminance_only)

    def _style_working(self, style: images.Plane) -> np.ndarray:
        return images.style_working(
            style, self._content, self.layout, self.rendering, self.options.preserve_color
        )

    def _extractor(self) -> VGGFeatures:
        opts = self.options
        assert self.vgg is not None
        extractor = VGGFeatures(
            self.vgg.convs,
            opts.content_layers + opts.style_layers,
            self.vgg.preprocess,
            opts.pooling,
            opts.padding,
        )
        return extractor.to(self.device, memory_format=torch.channels_last)

    def _loss(self, extractor: VGGFeatures, level: Level) -> StyleTransferLoss:
        """The loss with its style targets at ``level``'s size, computed once per run."""
        opts = self.options
        vgg = self.vgg
        assert vgg is not None
        identity = (
            vgg.source, vgg.path, vgg.sha256,
            opts.seed if vgg.source == "random" else None, opts.pooling, opts.padding,
        )  # fmt: skip
        sets = [
            targets_for(
                extractor,
                self._style_working(style),
                shape,
                identity,
                opts.style_layers,
                self.device,
                self.precision,
            )
            for style, shape in zip(self._styles, level.style_shapes, strict=True)
        ]
        targets = blend(sets, self.blend_weights)
        if self._regions is not None:  # styles per label region
            targets = self._regions.losses(sets, targets, level.shape, self.device)
        placeholder = {name: ContentLoss(torch.zeros(())) for name in opts.content_layers}
        return StyleTransferLoss(
            content=placeholder,
            style={
                name: (targets[name], weight)
                for name, weight in zip(opts.style_layers, opts.style_layer_weights, strict=True)
            },
            content_weight=opts.content_weight,
            style_weight=opts.style_weight,
            tv_weight=opts.tv_weight,
            slice_weight=opts.slice_weight if self.planes > 1 else None,
            normalize=opts.loss_norm == "target",
        )

    def _initial_image(self, content: torch.Tensor) -> torch.Tensor:
        """Content, uniform noise, or the content with ``noise_ratio`` of noise (noisy).

        The noise is drawn on the CPU so a seed gives the same start on any device.
        """
        opts = self.options
        generator = torch.Generator().manual_seed(opts.seed)
        noise = torch.rand(content.shape, generator=generator).to(content.device)
        ratio = {"content": 0.0, "noise": 1.0, "noisy": opts.noise_ratio}[opts.init]
        return (1 - ratio) * content + ratio * noise


def _style_role(number: int, count: int) -> str:
    return f"style image {number}" if count > 1 else "style image"


def _stopped_early(run: _Progress, iteration: int, plane: int = 0, planes: int = 1) -> Step:
    """The final step of a run cancelled before (or between) its planes' work."""
    return Step(
        iteration=iteration,
        total=run.total,
        losses={},
        elapsed=time.perf_counter() - run.start,
        done=True,
        cancelled=True,
        plane=plane,
        planes=planes,
    )


class _Progress:
    """Run-wide counters that every plane's steps report against."""

    def __init__(self, start: float, total: int) -> None:
        self.start, self.total, self.evaluations = start, total, 0


START = 128
"""Longest side of the coarsest level, in px."""
AUTO_ABOVE = 256
"""``pyramid="auto"`` turns the pyramid on for working sizes above this."""
STEP = math.sqrt(2)
"""Each level is √2 larger than the previous: twice the pixels."""
MIN_LAST_STEP = 1.2
"""A level closer than this factor to the next one is skipped (too little gain)."""


@dataclass(frozen=True)
class Level:
    """One size of the schedule: the content's and each style's working shape."""

    size: int
    shape: tuple[int, int]
    style_shapes: tuple[tuple[int, int], ...]
    iterations: int

    def describe(self) -> dict[str, object]:
        return {"size": self.size, "shape": list(self.shape), "iterations": self.iterations}


def sizes(target: int, start: int | None = None) -> list[int]:
    """Level sizes, coarse to fine, ending with ``target``: 512 → 128, 181, 256, 362, 512."""
    found, size = [], float(start or START)
    while size * MIN_LAST_STEP <= target:
        found.append(round(size))
        size *= STEP
    return [*found, target]


def wanted(options: Options) -> bool:
    if options.pyramid == "auto":
        return options.gatys_size > AUTO_ABOVE
    return options.pyramid == "on"


def schedule(
    plane_shape: tuple[int, int],
    style_plane_shapes: list[tuple[int, int]],
    options: Options,
) -> list[Level]:
    """The levels of a run; just the full size when the pyramid is off.

    Coarse levels get ``pyramid_iterations`` each (default: a fifth of
    ``iterations``, at least 10); the full size gets ``iterations``. A level too
    small for the image's aspect ratio is left out rather than failing the run.
    """
    target = options.gatys_size
    coarse = options.pyramid_iterations or max(10, options.iterations // 5)
    levels = []
    for size in sizes(target) if wanted(options) else [target]:
        final = size == target
        style_size = max(1, round(size * options.style_scale))
        try:
            level = Level(
                size=size,
                shape=working_shape(plane_shape, size, options.spacing),
                style_shapes=tuple(working_shape(s, style_size) for s in style_plane_shapes),
                iterations=options.iterations if final else coarse,
            )
        except ValueError:
            if final:
                raise
            continue
        levels.append(level)
    return levels


def upsample(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The previous level's result as the next level's start (bicubic, clamped)."""
    if tuple(image.shape[-2:]) == tuple(shape):
        return image.detach().clone()
    if image.shape[-2] > shape[0]:  # never happens in a schedule; keep it well defined
        return resize(image.detach(), shape)
    return torch.nn.functional.interpolate(
        image.detach(), size=shape, mode="bicubic", align_corners=False
    ).clamp_(0, 1)
