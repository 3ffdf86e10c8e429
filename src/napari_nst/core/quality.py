"""How far a result is from its content and from its style, in real VGG19 features.

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
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .features import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, VGGFeatures
from .imaging import match_luminance, resize, working_shape
from .losses import gram_matrix, mean_square
from .weights import load_vgg19

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
    """Content and style distances of ``result`` (uint8, or float in [0, 1]; gray or RGB)."""
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
    """(1, 3, H, W) float in [0, 1]; gray is replicated, alpha dropped."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array / 255.0
    elif array.dtype.kind in "iu":
        array = array / np.iinfo(array.dtype).max
    array = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    if array.ndim == 2:
        array = array[..., None]
    array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()
