"""What a Gatys run minimises, and how a result is measured.

**Loss terms.** The three terms of Gatys et al.: content, style (Gram) and total
variation.

Each loss is a tiny module holding its target as a buffer, so targets move with
``.to(device)`` and are computed once per run. Features may arrive in bf16 from
autocast; every loss computes in fp32, where Gram matrices need the range.

**Normalisation** (``loss_norm="target"``, the default). A raw mean squared error
carries the scale of the loss network: the Caffe VGG19 (0–255 input) has features
~60× larger than torchvision's, so its style term (4th power of the features)
outweighs the content term (2nd power) by a factor of thousands, and no single
``style_weight`` can mean the same on both. Each term is therefore divided by
its target's mean square: the content term is ``MSE(F, Fc) / mean(Fc²)`` per
content layer, the style term ``MSE(G, Gs) / mean(Gs²)`` per style layer. Each term
is then a dimensionless relative distance, unchanged when the features are rescaled
by any factor and nearly so across working sizes, and they are exactly the
distances below measure. Total variation stays absolute (the image in
[0, 1] is the same for every loss network, and a stylised texture's neighbour
differences sit at VGG's pixel scale, about 0.01 at any size); dividing it by the
content's own would smooth a micrograph 13× harder than a photo. (crowsonkb's
style-transfer-pytorch instead scales each MSE to a unit-L1 gradient with respect
to its own input; that stays dependent on the feature scale through the network,
where this does not.)
``loss_norm="none"`` is the raw MSE of earlier versions, kept so their recipes
replay bit for bit.

**Regions.** Styles per region of a label image: guided Gram matrices (Gatys et al.
2017).

Each label value picks a style (an index into the run's styles) or ``"content"``
(no style there). A region's Gram matrix is computed from the features inside it
only, weighted by the region's mask at each layer's resolution and normalised by
its area, so a style does not bleed across a boundary and a small region counts
as much per pixel as a large one. Labels not named in ``label_styles`` (label 0,
the background, included) take the run's blend of all styles.

**Style targets.** Style targets: Gram matrices per style layer, built once per style
and process.

Batch items (and the planes of a stack) share a style, so a worker builds its
targets once; the key is everything they depend on (the working style pixels, the
weights, layers, pooling, device, precision), and the modules are read-only, so
runs share them. Several styles are mixed by weight, as neural-style's
``-style_blend_weights``: the targets become the weighted mean of their Grams.

**Quality.** How far a result is from its content and from its style, in real VGG19
features.

The yardstick of presets, benchmarks and tests, measured the same way for every
engine (ours and the peers'), with the bundled original VGG19 in fp32:

* **content distance** — MSE of the relu4_2 features of result and content,
  divided by the mean square of the content's: 0 for the content itself.
* **style distance** — over relu1_1 … relu5_1, the MSE of the Gram matrices
  (divided by C·H·W) of result and style, each divided by the mean square of the
  style's Gram, summed: 0 for a perfect texture match.

These are the terms the default normalised loss minimises (``loss_norm="target"``,
unit layer weights), so a preset's weights say directly how the two trade off.
Images are compared at one working size (``size``, the longest side; default the
result's own): result and content are resized to it, the style to the same longest
side. Compare results at the size they were computed at: measuring an upsampled
result at full resolution mostly measures the blur of the upsampling.

A gray result (or ``gray=True``) is judged on brightness: result, content and style
are each reduced to their luminance, and the style's luminance takes the content's
mean and spread, as luminance-only transfer does (Gatys et al. 2016): what a gray
result should carry is the painting's strokes at the scan's brightness, not its
colours or its brightness. Use ``gray=True`` for every engine's result on gray
content, so a peer that colours a gray scan is judged on the same terms.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import devices, images
from .images import match_luminance, resize, working_shape
from .vgg import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, VGGFeatures, load_vgg19


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations normalised by C·H·W, so the scale does not depend on size.

    Features arrive channels-last, where (N, H·W, C) is a free view; the product
    then needs no copy, and its backward one matrix product instead of two.
    """
    n, c, h, w = features.shape
    flat = features.float().permute(0, 2, 3, 1).reshape(n, h * w, c)
    return _Gram.apply(flat) / (c * h * w)


class _Gram(torch.autograd.Function):
    """FᵀF for F of shape (N, H·W, C); d(FᵀF) is F(G + Gᵀ) for upstream gradient G."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        return torch.bmm(flat.transpose(1, 2), flat)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        return torch.bmm(flat, grad + grad.transpose(1, 2))


def mean_square(tensor: torch.Tensor) -> torch.Tensor:
    """The divisor that makes a loss towards ``tensor`` relative (1 for an all-zero one)."""
    value = tensor.detach().float().pow(2).mean()
    return torch.where(value > 0, value, torch.ones_like(value))


class ContentLoss(nn.Module):
    """Mean squared difference of feature maps at one layer."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())
        self.register_buffer("divisor", mean_square(self.target))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(features.float(), self.target)


class StyleLoss(nn.Module):
    """Mean squared difference of Gram matrices at one layer."""

    def __init__(self, target_features: torch.Tensor | None = None) -> None:
        super().__init__()
        if target_features is not None:
            self.register_buffer("target", gram_matrix(target_features.detach()))

    @classmethod
    def from_gram(cls, gram: torch.Tensor) -> StyleLoss:
        """A loss towards a given Gram matrix (a blend of several styles)."""
        loss = cls()
        loss.register_buffer("target", gram.detach().float())
        return loss

    def mean_square(self) -> torch.Tensor:
        return mean_square(self.target)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(gram_matrix(features), self.target)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (smoothness prior)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


class StyleTransferLoss(nn.Module):
    """Weighted sum of all terms; returns each weighted term and their total.

    Reported losses are the weighted terms, so the numbers a user sees add up to
    the total being minimised. Style targets are fixed for a run; the content
    target (and, in stacks, the neighbouring slice's result) change per plane.
    With ``normalize`` each term is relative to its target (module docstring).
    """

    def __init__(
        self,
        content: dict[str, ContentLoss],
        style: dict[str, tuple[StyleLoss, float]],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        slice_weight: float | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.content = nn.ModuleDict(content)
        self.style = nn.ModuleDict({name: loss for name, (loss, _) in style.items()})
        self.style_layer_weights = {
            name: weight / (float(loss.mean_square()) if normalize else 1.0)
            for name, (loss, weight) in style.items()
        }
        self.weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}
        if slice_weight is not None:
            self.weights["slice"] = slice_weight
        self.reference: dict[str, ContentLoss] = {}

    def set_content(self, features: dict[str, torch.Tensor]) -> None:
        """New content targets for the next plane (the style targets stay)."""
        self.content = nn.ModuleDict({name: ContentLoss(features[name]) for name in self.content})

    def set_reference(self, features: dict[str, torch.Tensor] | None) -> None:
        """Content-layer features of the previous slice's result, for the inter-slice term.

        In the spirit of Ruder et al.'s temporal term with identity warping
        (neighbouring slices of a volume are already aligned). It compares features
        at the content layers rather than pixels, so it is in the content term's
        units whatever the loss network: ``slice_weight`` = ``content_weight``
        weighs "look like your neighbour" as much as "look like your slice".
        """
        features = features or {}
        self.reference = {name: ContentLoss(features[name]) for name in features}

    def forward(
        self, features: dict[str, torch.Tensor], image: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        zero = image.new_zeros(())
        content = self._relative(self.content, features, zero)
        style = sum(
            (
                self.style_layer_weights[name] * loss(features[name])
                for name, loss in self.style.items()
            ),
            zero,
        )
        terms = {
            "content": self.weights["content"] * content,
            "style": self.weights["style"] * style,
            "tv": self.weights["tv"] * total_variation(image) if self.weights["tv"] else zero,
        }
        if "slice" in self.weights:
            terms["slice"] = self.weights["slice"] * self._relative(self.reference, features, zero)
        terms["total"] = sum(terms.values(), zero)
        return terms

    def _relative(self, losses, features: dict[str, torch.Tensor], zero: torch.Tensor):
        """Σ over layers of each content-like loss, over its target's mean square if normalised."""
        total = zero
        for name, loss in losses.items():
            value = loss(features[name])
            total = total + (value / loss.divisor if self.normalize else value)
        return total


CONTENT = "content"
"""A region whose value in ``label_styles`` is this keeps the content (no style term)."""
BLEND = -1
"""Internal marker: the region takes the blend of all styles (labels not listed)."""


@dataclass(frozen=True)
class Regions:
    """A run's label image and what each label gets."""

    labels: np.ndarray
    label_styles: dict[int, int | str]

    @classmethod
    def check(
        cls, labels: object, label_styles: object, plane_shape: tuple[int, int], styles: int
    ) -> Regions | None:
        if labels is None:
            if label_styles:
                raise ValueError("label_styles needs labels (an integer image of the content)")
            return None
        return cls(check_labels(labels, plane_shape), parse_label_styles(label_styles, styles))

    def losses(
        self,
        style_sets: Sequence[Mapping[str, Any]],
        blended: Mapping[str, Any],
        shape: tuple[int, int],
        device: torch.device,
    ) -> dict[str, GuidedStyleLoss]:
        """Per style layer, one guided Gram loss over the regions that have a style."""
        masks = region_masks(self.labels, self.label_styles, shape, device)
        styled = [(mask, style) for mask, style in masks if style != CONTENT]

        def target(style: int | str, layer: str) -> torch.Tensor:
            return (blended if style == BLEND else style_sets[int(style)])[layer].target

        return {
            layer: GuidedStyleLoss(
                [mask for mask, _ in styled], [target(style, layer) for _, style in styled]
            ).to(device)
            for layer in blended
        }


def parse_label_styles(spec: object, styles: int) -> dict[int, int | str]:
    """``{label: style index | "content"}`` from a dict or ``"1:0,2:1,3:content"``."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        pairs = [part.split(":", 1) for part in spec.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"label_styles must look like '1:0,2:1,3:content'; got {spec!r}")
        spec = {key.strip(): value.strip() for key, value in pairs}
    if not isinstance(spec, Mapping):
        raise ValueError("label_styles must map label values to a style index or 'content'")
    parsed: dict[int, int | str] = {}
    for key, value in spec.items():
        try:
            label = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"label_styles: {key!r} is not a label value (an integer)") from None
        if value == CONTENT:
            parsed[label] = CONTENT
            continue
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"label_styles: label {label} maps to {value!r}; use a style index or 'content'"
            ) from None
        if not 0 <= index < styles:
            raise ValueError(
                f"label_styles: label {label} maps to style {index}, but there are {styles} "
                f"style image(s) (indices 0 to {styles - 1})"
            )
        parsed[label] = index
    return parsed


def check_labels(labels: object, plane_shape: tuple[int, int]) -> np.ndarray:
    """An integer (H, W) array the size of the content plane, or a readable error."""
    array = np.asarray(labels)
    if array.dtype.kind not in "iub":
        raise ValueError(f"labels must be an integer image (a Labels layer); got {array.dtype}")
    if array.shape != tuple(plane_shape):
        raise ValueError(
            f"labels are {array.shape[0] if array.ndim else 0}×"
            f"{array.shape[1] if array.ndim > 1 else 0} but the content plane is "
            f"{plane_shape[0]}×{plane_shape[1]}; they must be the same size"
        )
    return array.astype(np.int64, copy=False)


def region_masks(
    labels: np.ndarray,
    label_styles: Mapping[int, int | str],
    shape: tuple[int, int],
    device: torch.device,
) -> list[tuple[torch.Tensor, int | str]]:
    """(mask at the working size, style) per region; unlisted labels form one region."""
    resized = F.interpolate(
        torch.from_numpy(labels)[None, None].float(), size=shape, mode="nearest-exact"
    )[0, 0].to(torch.int64)
    regions: list[tuple[torch.Tensor, int | str]] = []
    listed = torch.zeros(shape, dtype=torch.bool)
    for label, style in label_styles.items():
        inside = resized == label
        listed |= inside
        if inside.any():
            regions.append((inside.float().to(device), style))
    if (~listed).any():
        regions.append(((~listed).float().to(device), BLEND))
    return regions


class GuidedStyleLoss(nn.Module):
    """Drop-in for a layer's :class:`~.losses.StyleLoss`: one Gram loss per region."""

    def __init__(self, masks: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        super().__init__()
        total = float(sum(mask.sum() for mask in masks)) or 1.0
        self.shares = [float(mask.sum()) / total for mask in masks]
        self.masks = list(masks)
        for number, target in enumerate(targets):
            self.register_buffer(f"target{number}", target.detach().float())
        self._resized: dict[tuple[int, int], list[torch.Tensor]] = {}

    def mean_square(self) -> torch.Tensor:
        """The regions' target mean squares, weighted by their shares (for normalisation)."""
        return sum(
            share * mean_square(getattr(self, f"target{number}"))
            for number, share in enumerate(self.shares)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        masks = self._masks_at((h, w))
        flat = features.float().permute(0, 2, 3, 1).reshape(n, h * w, c)
        loss = features.new_zeros((), dtype=torch.float32)
        for number, (mask, share) in enumerate(zip(masks, self.shares, strict=True)):
            weighted = flat * mask.reshape(1, h * w, 1)
            area = mask.sum().clamp_min(1e-6)
            gram = torch.bmm(weighted.transpose(1, 2), weighted) / (c * area)
            loss = loss + share * F.mse_loss(gram, getattr(self, f"target{number}"))
        return loss

    def _masks_at(self, shape: tuple[int, int]) -> list[torch.Tensor]:
        """Each mask at a layer's resolution: the share of each cell inside the region."""
        if shape not in self._resized:
            self._resized[shape] = [
                F.interpolate(mask[None, None], size=shape, mode="area")[0, 0]
                for mask in self.masks
            ]
        return self._resized[shape]


KEPT = 4
"""Style-target sets kept per process (a few MB each: Gram matrices, on the run's device)."""
_CACHE: OrderedDict[tuple[Hashable, ...], dict[str, StyleLoss]] = OrderedDict()
_LOCK = threading.Lock()
_builds = 0


def style_target_builds() -> int:
    """How many times this process computed style targets (the rest came from the cache)."""
    return _builds


def targets_for(
    extractor: VGGFeatures,
    working: np.ndarray,
    shape: tuple[int, int],
    identity: tuple[Hashable, ...],
    layers: tuple[str, ...],
    device: torch.device,
    precision: str,
) -> dict[str, StyleLoss]:
    """The targets of one style: ``working`` pixels resized to ``shape``.

    ``identity`` names the loss network (weights source, file hash, seed, pooling).
    The torch thread count is part of the key: on the CPU the Gram matrices' sums
    depend on it, and targets computed under another count would make a run differ
    from its replay in a fresh process (a record replays with its own count).
    """
    global _builds
    working = np.ascontiguousarray(working, dtype=np.float32)
    digest = hashlib.sha256(working.tobytes()).hexdigest()
    threads = torch.get_num_threads() if device.type == "cpu" else None
    key = (digest, working.shape, shape, identity, layers, str(device), precision, threads)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    style = images.to_tensor(working, shape, device)
    with torch.no_grad(), devices.autocast(device, precision):
        features = extractor(style)
    targets = {name: StyleLoss(features[name]) for name in layers}
    with _LOCK:
        _CACHE[key] = targets
        _builds += 1
        while len(_CACHE) > KEPT:
            _CACHE.popitem(last=False)
    return targets


def blend(
    target_sets: Sequence[dict[str, StyleLoss]], weights: Sequence[float]
) -> dict[str, StyleLoss]:
    """One set whose Grams are the weighted mean of the sets' (weights sum to 1)."""
    if len(target_sets) == 1:
        return target_sets[0]
    total = float(sum(weights))
    return {
        name: StyleLoss.from_gram(
            sum(weight / total * targets[name].target for targets, weight in zip(
                target_sets, weights, strict=True))
        )
        for name in target_sets[0]
    }  # fmt: skip


CONTENT_LAYER = DEFAULT_CONTENT_LAYERS[0]
STYLE_LAYERS = DEFAULT_STYLE_LAYERS


@dataclass(frozen=True)
class Distances:
    content: float
    style: float
    style_layers: dict[str, float]

    def to_dict(self) -> dict[str, float]:
        return {"content": self.content, "style": self.style}


def distances(
    result: np.ndarray,
    content: np.ndarray,
    style: np.ndarray,
    size: int | None = None,
    gray: bool | None = None,
) -> Distances:
    """Content and style distances of ``result`` (integers, or float in [0, 1]; gray or RGB)."""
    if gray is None:
        gray = np.asarray(result).ndim == 2 or np.asarray(result).shape[-1] == 1
    if gray:
        result, content, style = (_luminance(image) for image in (result, content, style))
        style = np.clip(match_luminance(style, float(content.mean()), float(content.std())), 0, 1)
    image = _tensor(result)
    shape = working_shape(image.shape[-2:], size) if size else tuple(image.shape[-2:])
    image = resize(image, shape)
    reference = resize(_tensor(content), shape)
    painting = _tensor(style)
    painting = resize(painting, working_shape(painting.shape[-2:], max(shape)))
    network = _network()
    with torch.no_grad():
        ours, theirs, target = network(image), network(reference), network(painting)
        content_distance = F.mse_loss(ours[CONTENT_LAYER], theirs[CONTENT_LAYER]) / mean_square(
            theirs[CONTENT_LAYER]
        )
        per_layer = {}
        for layer in STYLE_LAYERS:
            gram = gram_matrix(target[layer])
            per_layer[layer] = float(
                F.mse_loss(gram_matrix(ours[layer]), gram) / mean_square(gram)
            )
    return Distances(float(content_distance), sum(per_layer.values()), per_layer)


def gray_ssim(result: np.ndarray, content: np.ndarray) -> float:
    """Structural similarity of the result's and content's brightness (both to [0, 1]),
    at the result's size: does the anatomy of a scan survive the style?"""
    from skimage.metrics import structural_similarity

    image = _tensor(result).mean(1)[0]
    reference = resize(_tensor(content), tuple(image.shape)).mean(1)[0]
    return float(structural_similarity(image.numpy(), reference.numpy(), data_range=1.0))


@functools.lru_cache(maxsize=1)
def _network() -> VGGFeatures:
    weights = load_vgg19("bundled")
    return VGGFeatures(weights.convs, (CONTENT_LAYER, *STYLE_LAYERS), weights.preprocess)


def _luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) brightness in [0, 1] (Rec. 601 luma for colour)."""
    unit = _tensor(image)[0].permute(1, 2, 0).numpy()
    return unit @ np.array([0.299, 0.587, 0.114], np.float32)


def _tensor(image: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1]; gray is replicated, alpha dropped. Integers wider
    than 8 bits are read as the engine reads them: gray (a 12-bit scan in uint16) by its
    own range, colour by the type's."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array / 255.0
    elif array.dtype.kind in "iub":
        gray = array.ndim == 2 or array.shape[-1] == 1
        low, high = (float(array.min()), float(array.max())) if gray else (0.0, 1.0)
        if not gray and array.dtype.kind != "b":
            high = float(np.iinfo(array.dtype).max)
        array = (array - low) / max(high - low, 1.0)
    array = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    if array.ndim == 2:
        array = array[..., None]
    array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()
