"""Universal style transfer: any painting in one feed-forward pass, no training per style.

**The maths.** An encoder (VGG19 up to ``reluN_1``) turns an image into features; a
decoder trained to invert that encoder turns features back into an image. Between
the two, the content's features take on the style's statistics:

* **WCT** (Li et al. 2017, *Universal Style Transfer via Feature Transforms*): the
  content's features are *whitened* (centred, their covariance made the identity)
  and *coloured* (given the style's covariance and mean). Applied coarse to fine,
  one level per ``reluN_1``, each level's result encoded again at the next finer one.
* **AdaIN** (Huang & Belongie 2017): each channel takes the style's mean and
  standard deviation; one level.

``alpha`` blends the transformed features with the content's own at every level
(1: all style, 0: the content reconstructed). Eigen-decompositions run in float64;
eigenvalues under :data:`RANK_TOLERANCE` of the largest are dropped, so a constant
or rank-deficient input whitens to zero on those directions instead of dividing by
zero.

**The networks** (encoders and decoders in the layouts people have files in, and
reading those files safely) are in :mod:`.networks`.

**The run.** :class:`UniversalTransfer` streams one :class:`Step` per level and
plane. Planes too large for memory are tiled as the fast method's are: each level's
transform (an affine map of the features, from statistics of the whole plane at up to
:data:`.fast.STATS_SIDE` px) is the same for every tile, so tiles join without seams.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import devices, images
from .images import Plane, Rendering, inspect, read_plane, resize, working_shape
from .losses import parse_label_styles
from .networks import MIN_TILE, Decoders, Pair, load_decoders, run_levels
from .options import Options, check_non_negative, style_images
from .step import STOP, LocalRun, Step

RANK_TOLERANCE = 1e-5
"""Eigenvalues below this fraction of the largest count as zero (Li et al. use 1e-5)."""
ADAIN_EPSILON = 1e-5
"""Added to variances before their square root (Huang & Belongie's)."""
BYTES_PER_PIXEL = 1500
"""Peak memory of one encode + decode at relu3_1, measured: ~1.4 kB per pixel (fp32)."""


# -- the maths ---------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """Mean (C, 1) and covariance (C, C) of features, in float64."""

    mean: torch.Tensor
    covariance: torch.Tensor

    @classmethod
    def of(cls, features: torch.Tensor, chunk: int = 1 << 15) -> Moments:
        """Moments of (C, N) features (any float dtype), chunk by chunk: each chunk's sum
        and centred product in the features' own float type (fast; ≤ 32768 terms per
        sum), the chunks' summed in float64, so a large plane never needs a float64
        copy."""
        channels, count = features.shape
        dtype = features.dtype if features.is_floating_point() else torch.float32
        chunks = [features[:, start : start + chunk] for start in range(0, count, chunk)]
        total = torch.zeros(channels, 1, dtype=torch.float64)
        for part in chunks:
            total += part.to(dtype).sum(1, keepdim=True).double()
        mean = total / max(count, 1)
        covariance = torch.zeros(channels, channels, dtype=torch.float64)
        centre = mean.to(dtype)
        for part in chunks:
            part = part.to(dtype) - centre
            covariance += (part @ part.T).double()
        return cls(mean, covariance / max(count - 1, 1))

    @classmethod
    def mixed(cls, moments: list[Moments], weights: list[float]) -> Moments:
        """The moments of a weighted mixture of feature sets (several styles blended)."""
        total = sum(weights)
        mean = sum(w / total * m.mean for m, w in zip(moments, weights, strict=True))
        second = sum(
            w / total * (m.covariance + m.mean @ m.mean.T)
            for m, w in zip(moments, weights, strict=True)
        )
        return cls(mean, second - mean @ mean.T)


def _eigen(covariance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and vectors of a symmetric matrix, those under the tolerance dropped."""
    values, vectors = torch.linalg.eigh(covariance)
    keep = values > RANK_TOLERANCE * values.abs().max().clamp_min(torch.finfo(values.dtype).tiny)
    return values[keep], vectors[:, keep]


def whitening(covariance: torch.Tensor) -> torch.Tensor:
    """W with W·cov·Wᵀ = I on the covariance's support (float64)."""
    values, vectors = _eigen(covariance)
    return vectors @ torch.diag(values.rsqrt()) @ vectors.T


def colouring(covariance: torch.Tensor) -> torch.Tensor:
    """C with C·Cᵀ = cov (float64): the covariance's symmetric square root."""
    values, vectors = _eigen(covariance)
    return vectors @ torch.diag(values.sqrt()) @ vectors.T


@dataclass(frozen=True)
class Affine:
    """``f ↦ matrix·f + offset`` on (C, N) features: one level's transform, computed once
    per plane and applied to the whole plane or to each of its tiles alike."""

    matrix: torch.Tensor
    offset: torch.Tensor

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        flat = features.reshape(features.shape[0], -1).float()
        # (N, C) out: a channels-last plane's features stay channels-last, uncopied
        out = torch.addmm(self.offset.float().T, flat.T, self.matrix.float().T)
        return out.T.reshape(features.shape)


def wct_affine(content: Moments, style: Moments, alpha: float = 1.0) -> Affine:
    """Whitening then colouring, blended with the identity by ``alpha``:
    ``alpha·(C_s W_c (f − μ_c) + μ_s) + (1 − alpha)·f``, as one affine map (float64)."""
    transform = colouring(style.covariance) @ whitening(content.covariance)
    eye = torch.eye(len(transform), dtype=torch.float64)
    matrix = alpha * transform + (1 - alpha) * eye
    offset = alpha * (style.mean - transform @ content.mean)
    return Affine(matrix, offset)


def adain_affine(content: Moments, style: Moments, alpha: float = 1.0) -> Affine:
    """Each channel given the style's mean and standard deviation, blended by ``alpha``
    with the content's own (Huang & Belongie 2017), as one diagonal affine map."""
    content_std = (content.covariance.diagonal() + ADAIN_EPSILON).sqrt()
    style_std = (style.covariance.diagonal() + ADAIN_EPSILON).sqrt()
    scale = style_std / content_std
    matrix = torch.diag(alpha * scale + (1 - alpha))
    offset = alpha * (style.mean - scale[:, None] * content.mean)
    return Affine(matrix, offset)


TRANSFORMS = {"wct": wct_affine, "adain": adain_affine}


def transform(
    content: torch.Tensor, style: torch.Tensor, method: str = "wct", alpha: float = 1.0
) -> torch.Tensor:
    """(C, H, W) content features with ``style`` features' statistics (any shapes)."""
    flat = content.reshape(len(content), -1)
    affine = TRANSFORMS[method](Moments.of(flat), Moments.of(style.reshape(len(style), -1)), alpha)
    return affine(content)


# -- the networks ------------------------------------------------------------------


# -- the run -----------------------------------------------------------------------


CONTENT = "content"
BLEND = "blend"


class UniversalTransfer(LocalRun):
    """A validated WCT or AdaIN run; decoders are read when the run starts."""

    # One pass per level: nothing to steer or go on with (see step.Run); a finished
    # untiled run of one plane keeps its last level's features, to redecode.
    pausable = True
    steerable = False
    continuable = False
    one_pass = "one pass per level"

    def __init__(
        self, content: object, style: object, options: Options, labels: object = None
    ) -> None:
        styles, weights = style_images(style, options)
        self.options, self.method = options, options.method
        self.blend_weights = [w / sum(weights) for w in weights]
        self.layout = inspect(
            content, "content image", options.contrast_limits, stack=options.stack == "all"
        )
        self._content = content
        self._styles = [
            read_plane(
                s, (), inspect(s, "style image" if len(styles) == 1 else f"style image {n}")
            )
            for n, s in enumerate(styles, start=1)
        ]
        luminance = options.luminance_only
        if luminance is None:  # gray in, gray out; colour keeps its colours unless asked
            luminance = not self.layout.colour or options.preserve_color == "luminance"
        self.shape = working_shape(
            self.layout.plane_shape, options.size or self.full_size, options.spacing
        )
        self.rendering = Rendering(
            self.layout, luminance, options.output_range,
            match_colour=options.preserve_color == "histogram" and not luminance,
            working_shape=self.shape if options.output_size == "working" else None,
        )  # fmt: skip
        self.levels = run_levels(self.method, options.levels, options.decoders)
        self._labels: np.ndarray | None = None
        self._label_styles: dict[int, int | str] = {}
        if labels is not None:
            from .losses import check_labels

            self._labels = check_labels(labels, self.layout.plane_shape)
            self._label_styles = parse_label_styles(options.label_styles or {}, len(styles))
        elif options.label_styles:
            raise ValueError("label_styles needs labels (an integer image of regions)")
        self.device = devices.resolve_device(options.device)
        self.precision = devices.resolve_precision(options.precision, self.device)
        self.tile = devices.feed_forward_tile(
            self.shape, self.device, BYTES_PER_PIXEL, options.tile, MIN_TILE, self._bytes_at
        )
        self.decoders: Decoders | None = None
        self.non_finite = 0
        self.last_iteration = 0
        self._stop = threading.Event()
        self._last: tuple[_Level, Plane] | None = None
        self.redecoded_alpha: float | None = None

    def info(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "precision": self.precision,
            "working_size": list(self.shape),
            "luminance_only": self.rendering.luminance_only,
            "levels": list(self.levels),
            "alpha": self.options.alpha,
            "tile": self.tile,
            "result": {"shape": list(self.rendering.shape), "dtype": str(self.rendering.dtype)},
            **self.rendering.resizing(self.shape),
            "non_finite_pixels": self.non_finite,
            "decoders": self.decoders.describe() if self.decoders else {"source": None},
        } | ({"redecoded": {"alpha": self.redecoded_alpha, "level": self.levels[-1]}}
             if self.redecoded_alpha is not None else {})  # fmt: skip

    def _bytes_at(self, size: int) -> int:
        height, width = working_shape(self.layout.plane_shape, size, self.options.spacing)
        return height * width * BYTES_PER_PIXEL + devices.FIXED_BYTES

    def steps(self) -> Iterator[Step]:
        """One step per level and plane (per tile when tiled); ``send(STOP)`` keeps the
        finished planes."""
        hint = "leave tile on auto (tiles bound the memory), or use a smaller size"
        yield from devices.guard(self._run(), self.device, hint)

    def _run(self) -> Iterator[Step]:
        from .fast import plan

        start = time.perf_counter()
        self.decoders = load_decoders(self.options.decoders)
        devices.configure(self.device)
        pairs = [self._on_device(self.decoders.pairs[level]) for level in self.levels]
        tiles = plan(self.shape, self.tile) if self.tile else []
        per_level = max(1, len(tiles))
        total = self.planes * len(pairs) * per_level
        style_moments = self._style_moments(pairs, self._style_inputs())
        for number, index in enumerate(self.layout.indices):
            plane = read_plane(self._content, index, self.layout)
            self.non_finite += plane.non_finite
            image = self._input(plane)
            labels = self._plane_labels()
            for depth, pair in enumerate(pairs):
                level = _Level(self, pair, style_moments[pair.level], labels)
                done = (number * len(pairs) + depth) * per_level
                if tiles:
                    joined = yield from level.tiled(
                        image, tiles, done, total, start, (number, index)
                    )
                    if joined is None:
                        return
                    image = joined
                else:
                    if self._stop.is_set():
                        yield self._step(done, total, start, number, index, done=True,
                                         cancelled=True)  # fmt: skip
                        return
                    image = level.whole(image)
                    if depth == len(pairs) - 1 and self.planes == 1:
                        self._last = (level, plane)  # its features, to redecode
                last = depth == len(pairs) - 1
                final = self.rendering.render(self._channels(image), plane)
                reply = yield self._step(
                    done + per_level, total, start, number, index, image=final,
                    plane_done=last, done=last and number == self.planes - 1,
                    level=depth, levels=len(pairs),
                )  # fmt: skip
                self.last_iteration = done + per_level
                if reply == STOP and not (last and number == self.planes - 1):
                    yield self._step(
                        done + per_level, total, start, number, index, done=True, cancelled=True,
                        plane_done=last,
                    )  # fmt: skip
                    return

    @property
    def redecodable(self) -> bool:
        return self._last is not None

    @torch.no_grad()
    def redecoded(self, alpha: float) -> np.ndarray:
        """The result again with another ``alpha`` at the last level, from the features
        kept from the run: one decoder pass, no encoding (the widget's alpha slider).

        With one level (AdaIN's default) this is the run with that alpha, and the run's
        options say so; with several (WCT) the coarser levels keep the alpha they ran
        with, and ``info()["redecoded"]`` says which alpha the last level has now.
        """
        if self._last is None:
            raise ValueError("redecoding needs a finished untiled run of one plane")
        check_non_negative("alpha", alpha, maximum=1.0)
        level, plane = self._last
        styled = level._apply(level.features, level.flat_labels)  # one matrix product
        blended = _blend(level.features, styled, float(alpha))
        image = self._decode(level.pair, blended, self.shape)
        if len(self.levels) == 1:
            self.options = dataclasses.replace(self.options, alpha=float(alpha))
        else:
            self.redecoded_alpha = float(alpha)
        return self.rendering.render(self._channels(image), plane, owned=True)

    def _step(
        self,
        count: int,
        total: int,
        start: float,
        number: int,
        index: tuple[int, ...],
        **fields: Any,
    ) -> Step:
        return Step(
            iteration=count, total=total, losses={}, elapsed=time.perf_counter() - start,
            index=index, plane=number, planes=self.planes, **fields,
        )  # fmt: skip

    def _on_device(self, pair: Pair) -> Pair:
        """The pair as this run computes with it: on its device, in its precision's
        dtype, channels-last (copies; the loaded ones stay cached as they are)."""
        encoder = devices.inference_copy(pair.encoder, self.device, self.precision)
        decoder = devices.inference_copy(pair.decoder, self.device, self.precision)
        return Pair(pair.level, encoder, decoder, pair.files)

    def _on_network(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, devices.dtype_of(self.precision)).contiguous(
            memory_format=torch.channels_last
        )

    def _input(self, plane: Plane) -> torch.Tensor:
        """(1, 3, h, w) in [0, 1] at the working size: RGB, or the luma thrice."""
        unit = images.working_channels(plane.unit, self.rendering.luminance_only)
        tensor = torch.from_numpy(np.ascontiguousarray(unit)).permute(2, 0, 1)[None]
        return resize(tensor.expand(-1, 3, -1, -1), self.shape)

    def _style_inputs(self) -> list[torch.Tensor]:
        size = max(1, round(max(self.shape) * self.options.style_scale))
        inputs = []
        for style in self._styles:
            unit = images.style_working(
                style, self._content, self.layout, self.rendering, self.options.preserve_color
            )
            tensor = torch.from_numpy(np.ascontiguousarray(unit)).permute(2, 0, 1)[None]
            inputs.append(
                resize(tensor.expand(-1, 3, -1, -1), working_shape(unit.shape[:2], size))
            )
        return inputs

    def _style_moments(
        self, pairs: list[Pair], styles: list[torch.Tensor]
    ) -> dict[str, list[Moments]]:
        """Each style's feature moments at every level. Where the shallower encoders are
        the deepest one cut short (the shipped decoders' are: one VGG19), one pass of the
        deepest encoder gives every level's features."""
        deepest = pairs[0]
        taps = {
            len(p.encoder) - 1: p.level for p in pairs if _is_prefix(p.encoder, deepest.encoder)
        }
        moments: dict[str, list[Moments]] = {p.level: [] for p in pairs}
        for style in styles:
            x = self._on_network(style)
            for index, module in enumerate(deepest.encoder):
                x = module(x)
                if index in taps:
                    moments[taps[index]].append(_flat_moments(x.float()))
            for pair in pairs:
                if len(moments[pair.level]) < len(moments[deepest.level]):
                    moments[pair.level].append(_flat_moments(self._encode(pair, style)))
        return moments

    def _encode(self, pair: Pair, image: torch.Tensor) -> torch.Tensor:
        return pair.encoder(self._on_network(image)).float()

    def _decode(self, pair: Pair, features: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        image = pair.decoder(self._on_network(features))
        return image.float()[..., : shape[0], : shape[1]].clamp(0, 1).cpu().contiguous()

    def _plane_labels(self) -> torch.Tensor | None:
        """The label image at the working size (nearest), or None."""
        if self._labels is None:
            return None
        labels = torch.from_numpy(self._labels)[None, None].float()
        return torch.nn.functional.interpolate(labels, size=self.shape, mode="nearest-exact")[0, 0]

    def _channels(self, image: torch.Tensor) -> torch.Tensor:
        if self.rendering.luminance_only:
            from .fast import _LUMA

            return (image * _LUMA.view(1, 3, 1, 1).to(image)).sum(1, keepdim=True)
        return image


def _flat(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) features as (C, H·W): a view of channels-last features (an
    encoder's), no copy of a plane's worth of them."""
    return features[0].permute(1, 2, 0).reshape(-1, features.shape[1]).T


def _unflat(flat: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(C, H·W) back to (1, C, H, W), channels-last (a view of :func:`_flat`'s)."""
    batch, channels, height, width = shape
    return flat.T.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def _blend(content: torch.Tensor, styled: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha``·styled + (1 − alpha)·content; at alpha 1 the styled features themselves."""
    return styled if alpha == 1 else torch.lerp(content, styled, alpha)


def _flat_moments(features: torch.Tensor) -> Moments:
    return Moments.of(_flat(features))


def _is_prefix(short: nn.Sequential, long: nn.Sequential) -> bool:
    """Whether ``short`` is ``long`` cut after its own length (same weights)."""
    if len(short) > len(long):
        return False
    mine, theirs = short.state_dict(), long[: len(short)].state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


class _Level:
    """One level of one plane: the transform (an affine map per region, from the whole
    plane's statistics), applied to the plane or tile by tile."""

    def __init__(
        self,
        run: UniversalTransfer,
        pair: Pair,
        style_moments: list[Moments],
        labels: torch.Tensor | None,
    ) -> None:
        self.run, self.pair, self.style_moments, self.labels = run, pair, style_moments, labels
        self.affines: list[tuple[int | None, Affine | None]] = []
        self.features, self.flat_labels = torch.empty(0), None

    def whole(self, image: torch.Tensor) -> torch.Tensor:
        run = self.run
        features = run._encode(self.pair, image)
        labels = self._labels_at(self.labels, features.shape[-2:])
        self._prepare(features, labels)
        styled = self._apply(features, labels)
        self.features, self.flat_labels = features, labels
        blended = _blend(features, styled, run.options.alpha)
        return run._decode(self.pair, blended, image.shape[-2:])

    def tiled(self, image, tiles, done, total, start, where) -> Iterator[Step]:
        from .fast import STATS_SIDE, fade_sums, tile_fade

        run = self.run
        number, index = where
        side = min(STATS_SIDE, max(image.shape[-2:]))
        reference = resize(image, working_shape(image.shape[-2:], side))
        features = run._encode(self.pair, reference)
        self._prepare(features, self._labels_at(self.labels, features.shape[-2:]))
        del features, reference
        accumulated = torch.zeros_like(image)
        for count, tile in enumerate(tiles, start=1):
            if run._stop.is_set():
                yield run._step(done, total, start, number, index, done=True, cancelled=True)
                return None
            rows, columns = tile.slices
            part = image[..., rows, columns]
            tile_features = run._encode(self.pair, part)
            labels = None if self.labels is None else self.labels[rows, columns]
            labels = self._labels_at(labels, tile_features.shape[-2:])
            styled = self._apply(tile_features, labels)
            blended = _blend(tile_features, styled, run.options.alpha)
            out = run._decode(self.pair, blended, part.shape[-2:])
            fade = torch.from_numpy(tile_fade(tile, image.shape[-2:]))[None, None]
            accumulated[..., rows, columns] += out.mul_(fade)
            if (yield run._step(done + count, total, start, number, index)) == STOP:
                yield run._step(
                    done + count, total, start, number, index, done=True, cancelled=True
                )
                return None
        row_sum, column_sum = fade_sums(tiles, image.shape[-2:])
        accumulated.div_(torch.from_numpy(row_sum)[:, None]).div_(torch.from_numpy(column_sum))
        return accumulated

    @staticmethod
    def _labels_at(labels: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor | None:
        if labels is None:
            return None
        return torch.nn.functional.interpolate(
            labels[None, None], size=tuple(shape), mode="nearest-exact"
        )[0, 0].flatten()

    def _prepare(self, features: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Each region's affine map at alpha 1, from ``features`` of the whole plane."""
        run = self.run
        flat = _flat(features)
        make = TRANSFORMS[run.method]
        if labels is None:
            regions: list[tuple[int | None, int | str]] = [(None, BLEND)]
        else:
            listed = list(run._label_styles.items())
            regions = [(label, style) for label, style in listed] + [(None, BLEND)]
        self.affines = []
        for label, style in regions:
            if labels is None:
                inside = flat
            elif label is None:  # every label not listed
                known = torch.tensor([k for k, _ in regions if k is not None], dtype=labels.dtype)
                inside = flat[:, ~torch.isin(labels, known)]
            else:
                inside = flat[:, labels == label]
            if style == CONTENT or inside.shape[1] == 0:
                self.affines.append((label, None))
                continue
            content = Moments.of(inside)
            if style == BLEND:
                maps = [make(content, s) for s in self.style_moments]
                weights = run.blend_weights
            else:
                maps, weights = [make(content, self.style_moments[int(style)])], [1.0]
            matrix = sum(w * m.matrix for m, w in zip(maps, weights, strict=True))
            offset = sum(w * m.offset for m, w in zip(maps, weights, strict=True))
            self.affines.append((label, Affine(matrix, offset)))

    def _apply(self, features: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The styled features (alpha 1): each region's map on its own pixels."""
        flat = _flat(features)
        if labels is None:
            label, affine = self.affines[0]
            return features if affine is None else _unflat(affine(flat), features.shape)
        out = flat.clone()
        known = torch.tensor([k for k, _ in self.affines if k is not None], dtype=labels.dtype)
        for label, affine in self.affines:
            inside = ~torch.isin(labels, known) if label is None else labels == label
            if affine is not None and inside.any():
                out[:, inside] = affine(flat[:, inside])
        return _unflat(out, features.shape)
