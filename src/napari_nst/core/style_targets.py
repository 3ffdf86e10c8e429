"""Style targets: Gram matrices per style layer, built once per style and process.

Batch items (and the planes of a stack) share a style, so a worker builds its
targets once; the key is everything they depend on (the working style pixels, the
weights, layers, pooling, device, precision), and the modules are read-only, so
runs share them. Several styles are mixed by weight, as neural-style's
``-style_blend_weights``: the targets become the weighted mean of their Grams.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

import numpy as np
import torch

from . import devices, imaging
from .features import VGGFeatures
from .losses import StyleLoss

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
    """
    global _builds
    working = np.ascontiguousarray(working, dtype=np.float32)
    digest = hashlib.sha256(working.tobytes()).hexdigest()
    key = (digest, working.shape, shape, identity, layers, str(device), precision)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    style = imaging.to_tensor(working, shape, device)
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
